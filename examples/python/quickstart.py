"""vdb from Python: create a collection, insert rows, search, explain.

Generate the client from the proto (once), start vdbd, then run:

    python -m grpc_tools.protoc -I ../../proto --python_out=. --grpc_python_out=. vdb/v1/vdb.proto
    python quickstart.py --server 127.0.0.1:50051

Only `grpcio` (and `grpcio-tools` to generate the client) are needed.
"""

import argparse
import math
import random
import sys

import grpc

from vdb.v1 import vdb_pb2 as pb
from vdb.v1 import vdb_pb2_grpc as rpc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--collection", default="py_quickstart")
    ap.add_argument("--api-key", default=None, help="for a server with API keys on")
    args = ap.parse_args()

    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
    vdb = rpc.VdbStub(grpc.insecure_channel(args.server))

    # A collection of 16-d vectors in 8 lists, searched over 2 by default.
    try:
        vdb.DropCollection(pb.DropCollectionRequest(name=args.collection), metadata=metadata)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
    info = vdb.CreateCollection(
        pb.CreateCollectionRequest(
            name=args.collection,
            config=pb.CollectionConfig(dim=16, metric=pb.METRIC_COSINE, nlist=8, nprobe=2),
        ),
        metadata=metadata,
    )
    print(f"created {info.name}: dim {info.config.dim}, nlist {info.config.nlist}")

    # 2,000 rows around 8 directions, with their group as payload.
    rng = random.Random(7)
    centers = [[rng.gauss(0, 1) for _ in range(16)] for _ in range(8)]
    rows = []
    for i in range(2000):
        g = i % 8
        rows.append(
            pb.Row(
                id=i,
                vector=[c + rng.gauss(0, 0.2) for c in centers[g]],
                payload=f"group-{g}".encode(),
            )
        )
    for start in range(0, len(rows), 500):
        vdb.Upsert(pb.UpsertRequest(collection=args.collection, rows=rows[start : start + 500]), metadata=metadata)
    done = vdb.Flush(pb.MaintenanceRequest(collection=args.collection), metadata=metadata)
    s = done.info.stats
    print(f"inserted {s.rows} rows; trained {s.lists} lists (generation {s.generation})")

    # Search: a noisy copy of group 3's center finds group 3.
    query = [c + rng.gauss(0, 0.1) for c in centers[3]]
    res = vdb.Search(
        pb.SearchRequest(
            collection=args.collection,
            queries=[pb.Vector(values=query)],
            k=5,
            with_payload=True,
        ),
        metadata=metadata,
    )
    hits = res.results[0].hits
    for h in hits:
        print(f"  id {h.id:>5}  distance {h.distance:.4f}  {h.payload.decode()}")
    if not all(h.payload == b"group-3" for h in hits):
        print("unexpected neighbours", file=sys.stderr)
        return 1

    # Explain: which lists the search opened and what it cost.
    ex = vdb.Explain(
        pb.ExplainRequest(collection=args.collection, query=pb.Vector(values=query), k=5),
        metadata=metadata,
    )
    print(
        f"explain: {ex.coarse_distances} centroid + {ex.fine_distances} vector distances "
        f"for {ex.rows} rows; probed lists {[p.list for p in ex.probed]}"
    )

    # Errors carry a status code and name the field.
    try:
        vdb.Search(pb.SearchRequest(collection=args.collection, queries=[pb.Vector(values=[math.nan] * 16)], k=5), metadata=metadata)
    except grpc.RpcError as e:
        print(f"a NaN query is refused: {e.code().name}: {e.details()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
