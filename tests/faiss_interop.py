#!/usr/bin/env python3
"""vdb <-> faiss with the real faiss package, against a real vdbd.

    python tests/faiss_interop.py --vdbctl target/debug/vdbctl --server ADDR \
        --collection digits --base data/digits/base.fvecs \
        --queries data/digits/query.fvecs --nprobe 4

vdb -> faiss: exports the collection with `vdbctl export --format faiss`,
reads it with faiss.read_index, checks the index type, dimension, list
count, row count and ids, then searches the first queries with faiss at the
same nprobe and compares the top k with `vdbctl search` (same distances;
same ids except between equal distances).

faiss -> vdb: builds an IVF16,Flat index of the base vectors in faiss (ids
7i + 3), writes it, imports it with `vdbctl import --format faiss` into a
new collection, checks that the collection kept the index's centroids (its
own export has them bit for bit) and that searches agree again.

Run by .ci/run.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import faiss
import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].view(np.float32).copy()


def vdbctl(args, *rest):
    out = subprocess.run(
        [args.vdbctl, "--server", args.server, "--json", *rest],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def compare(args, collection, index, queries):
    """vdbctl search against faiss search at args.nprobe on the same queries."""
    faiss.extract_index_ivf(index).nprobe = args.nprobe
    distances, labels = index.search(queries, args.k)
    for row in range(len(queries)):
        got = vdbctl(
            args, "search", collection, "--file", args.queries, "--row", str(row),
            "--k", str(args.k), "--nprobe", str(args.nprobe),
        )["hits"]
        vdb_ids = [h["id"] for h in got]
        vdb_d = np.array([h["distance"] for h in got], dtype=np.float32)
        assert len(got) == args.k, got
        assert np.allclose(vdb_d, distances[row], rtol=1e-4, atol=1e-3), (row, vdb_d, distances[row])
        for i, (a, b) in enumerate(zip(vdb_ids, labels[row].tolist())):
            if a != b:
                # Only rows at equal distance may come in another order.
                tied = np.isclose(distances[row], distances[row][i], rtol=1e-5, atol=1e-4)
                assert tied.sum() > 1, (row, i, vdb_ids, labels[row].tolist())
    return len(queries)


def centroids_of(index):
    q = faiss.extract_index_ivf(index).quantizer
    return q.reconstruct_n(0, q.ntotal)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vdbctl", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--nprobe", type=int, default=4)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--count", type=int, default=20)
    args = ap.parse_args()

    info = vdbctl(args, "describe", args.collection)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "export.faiss")
        exported = vdbctl(args, "export", args.collection, path, "--format", "faiss")
        index = faiss.read_index(path)

    ivf = faiss.extract_index_ivf(index)
    assert isinstance(faiss.downcast_index(index), faiss.IndexIVFFlat), type(index)
    assert index.d == info["dim"], (index.d, info["dim"])
    assert index.ntotal == info["rows"] == exported["rows"], (index.ntotal, info["rows"])
    assert ivf.nlist == info["lists"], (ivf.nlist, info["lists"])
    assert index.metric_type == faiss.METRIC_L2
    ids = np.concatenate(
        [faiss.rev_swig_ptr(ivf.invlists.get_ids(l), ivf.invlists.list_size(l))
         for l in range(ivf.nlist) if ivf.invlists.list_size(l) > 0]
    )
    assert len(set(ids.tolist())) == index.ntotal, "every row once"

    queries = read_fvecs(args.queries)[: args.count]
    checked = compare(args, args.collection, index, queries)
    print(
        f"faiss {faiss.__version__} read vdb's export of {args.collection!r}: "
        f"{index.ntotal} rows, {ivf.nlist} lists, dim {index.d}; "
        f"{checked} queries at nprobe {args.nprobe} give vdb's top {args.k}"
    )

    # faiss -> vdb.
    base = read_fvecs(args.base)
    built = faiss.index_factory(base.shape[1], "IVF16,Flat")
    built.train(base)
    built.add_with_ids(base, np.arange(len(base), dtype=np.int64) * 7 + 3)
    imported = args.collection + "-from-faiss"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "built.faiss")
        faiss.write_index(built, path)
        vdbctl(args, "import", imported, path, "--format", "faiss")
        back = os.path.join(tmp, "back.faiss")
        vdbctl(args, "export", imported, back)
        again = faiss.read_index(back)
    info = vdbctl(args, "describe", imported)
    assert info["rows"] == len(base) and info["lists"] == 16, info
    assert info["generation"] == 1, "the index's centroids, not a training of vdb's"
    assert np.array_equal(centroids_of(again), centroids_of(built)), "centroids kept bit for bit"
    checked = compare(args, imported, built, queries)
    print(
        f"vdb imported faiss's IVF16,Flat of {len(base)} rows as {imported!r} with its "
        f"centroids; {checked} queries at nprobe {args.nprobe} give faiss's top {args.k}"
    )


if __name__ == "__main__":
    sys.exit(main())
