"""vdb from Python with vdb-client: create a collection, insert rows,
search one query and a batch, explain a search, see an error.

    pip install ./clients/python        # from the repository's root
    python examples/python/quickstart.py --server 127.0.0.1:50051
"""

import argparse
import sys

import numpy as np

import vdb_client
from vdb_client import Client


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--collection", default="py_quickstart")
    ap.add_argument("--api-key", default=None, help="for a server with API keys on")
    args = ap.parse_args()

    with Client(args.server, api_key=args.api_key) as vdb:
        # A collection of 16-d vectors in 8 lists, searched over 2 by default.
        try:
            vdb.drop(args.collection)
        except vdb_client.NotFound:
            pass
        info = vdb.create_collection(args.collection, dim=16, metric="cosine", nlist=8, nprobe=2)
        print(f"created {info.name}: dim {info.dim}, nlist {info.nlist}")

        # 2,000 rows around 8 directions, with their group as payload.
        rng = np.random.default_rng(7)
        centres = rng.normal(size=(8, 16)).astype(np.float32)
        group = np.arange(2000) % 8
        vectors = centres[group] + rng.normal(scale=0.2, size=(2000, 16)).astype(np.float32)
        payloads = [f"group-{g}".encode() for g in group]
        vdb.upsert(args.collection, np.arange(2000), vectors, payloads=payloads, batch_size=500)
        vdb.flush(args.collection)
        info = vdb.describe(args.collection)
        print(f"inserted {info.rows} rows; trained {info.lists} lists (generation {info.generation})")

        # One query: a noisy copy of group 3's centre finds group 3.
        query = centres[3] + rng.normal(scale=0.1, size=16).astype(np.float32)
        hits = vdb.search(args.collection, query, k=5, with_payload=True)
        for h in hits:
            print(f"  id {h.id:>5}  distance {h.distance:.4f}  {h.payload.decode()}")
        if not all(h.payload == b"group-3" for h in hits):
            print("unexpected neighbours", file=sys.stderr)
            return 1

        # A batch: numpy arrays of ids and distances, one row per query.
        res = vdb.search(args.collection, vectors[:100], k=10)
        truth = vdb.search(args.collection, vectors[:100], k=10, exact=True)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.ids, truth.ids)])
        print(f"100 queries at nprobe {res.nprobe}: recall@10 {recall:.3f}")

        # Explain: which lists the search opened and what it cost.
        ex = vdb.explain(args.collection, query, k=5)
        print(
            f"explain: {ex.coarse_distances} centroid + {ex.fine_distances} vector distances "
            f"for {ex.rows} rows; probed lists {[p.list for p in ex.probed]}"
        )

        # Errors are exception classes per status code, naming the field.
        try:
            vdb.search(args.collection, np.full(16, np.nan, dtype=np.float32), k=5)
        except vdb_client.InvalidArgument as e:
            print(f"a NaN query is refused: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
