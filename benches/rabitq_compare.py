#!/usr/bin/env python3
"""IVF_RABITQ against faiss IndexIVFRaBitQ + IndexRefineFlat and hnswlib,
one run, one thread, one query per call.

    pip install faiss-cpu hnswlib numpy
    python3 benches/rabitq_compare.py --data DIR --nlist 256

DIR holds texmex files (base.fvecs, query.fvecs, gt.ivecs). vdb's side is
`cargo bench -p vdb-benches --bench rabitq` on the same files (IVF_FLAT and
IVF_RABITQ at epsilon 1.9, its own k-means), run by this script; faiss's
IVF uses the same nlist and nprobe sweep, refining k_factor x k candidates
exactly; hnswlib uses M=16, ef_construction=200 and an ef sweep. Prints a
Markdown table of every point and the QPS each reaches at recall@10 0.90,
0.95 and 0.98 (linear between measured points).
"""

import argparse
import os
import re
import subprocess
import time

import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


def recall(found, gt, k):
    return np.mean([len(set(f[:k]) & set(g[:k])) / k for f, g in zip(found, gt)])


def one_at_a_time(search, queries):
    out = []
    t = time.perf_counter()
    for q in queries:
        out.append(search(q[None, :]))
    return out, len(queries) / (time.perf_counter() - t)


def at_recall(points, target):
    """QPS at `target` recall, linear between the two points around it."""
    pts = sorted(points)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1 and r1 > r0:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--nprobe", default="4,8,16,32,64,128")
    ap.add_argument("--ef", default="16,32,64,128,256")
    ap.add_argument("--k-factor", type=float, default=4.0)
    ap.add_argument("--queries", type=int, default=1000)
    a = ap.parse_args()
    import faiss
    import hnswlib
    faiss.omp_set_num_threads(1)
    k = 10
    base = read_vecs(os.path.join(a.data, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(a.data, "query.fvecs"), np.float32)[: a.queries]
    gt = read_vecs(os.path.join(a.data, "gt.ivecs"), np.int32)[: a.queries]
    n, dim = base.shape
    nprobes = [int(x) for x in a.nprobe.split(",")]
    rows = []  # (system, setting, recall, qps)
    builds = {}

    env = dict(os.environ, VDB_BENCH_DATA=os.path.abspath(a.data), VDB_BENCH_NLIST=str(a.nlist),
               VDB_BENCH_QUERIES=str(a.queries))
    t = time.perf_counter()
    out = subprocess.run(["cargo", "bench", "-q", "-p", "vdb-benches", "--bench", "rabitq"], env=env,
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"train\+assign ([\d.]+) s, codes ([\d.]+) s", out)
    builds["vdb ivf_flat"] = float(m.group(1))
    builds["vdb ivf_rabitq"] = float(m.group(1)) + float(m.group(2))
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 7 and p[0].isdigit() and int(p[0]) in nprobes:
            name = " ".join(p[1:-5])
            if name in ("ivf_flat", "rabitq 1.9"):
                system = "vdb ivf_flat" if name == "ivf_flat" else "vdb ivf_rabitq"
                rows.append((system, f"nprobe {p[0]}", float(p[-5]), float(p[-4])))

    faiss.omp_set_num_threads(2)
    t = time.perf_counter()
    quantizer = faiss.IndexFlatL2(dim)
    ivf = faiss.IndexIVFRaBitQ(quantizer, dim, a.nlist)
    ivf.train(base)
    refined = faiss.IndexRefineFlat(ivf)
    refined.add(base)
    refined.k_factor = a.k_factor
    builds["faiss IVFRaBitQ+refine"] = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        found, qps = one_at_a_time(lambda q: refined.search(q, k)[1][0], queries)
        rows.append(("faiss IVFRaBitQ+refine", f"nprobe {nprobe}", recall(found, gt, k), qps))

    t = time.perf_counter()
    h = hnswlib.Index(space="l2", dim=dim)
    h.init_index(max_elements=n, M=16, ef_construction=200, random_seed=1)
    h.set_num_threads(2)
    h.add_items(base, np.arange(n))
    builds["hnswlib M=16"] = time.perf_counter() - t
    h.set_num_threads(1)
    for ef in [int(x) for x in a.ef.split(",")]:
        h.set_ef(max(ef, k))
        found, qps = one_at_a_time(lambda q: h.knn_query(q, k=k)[0][0], queries)
        rows.append(("hnswlib M=16", f"ef {ef}", recall(found, gt, k), qps))

    print(f"{n} x {dim}, nlist {a.nlist}, {len(queries)} queries, k {k}, one thread, one query per call "
          f"(faiss k_factor {a.k_factor}); builds on 2 threads except vdb's codes (one)\n")
    print("| system | setting | recall@10 | QPS |\n|---|---|---|---|")
    for s, setting, r, q in rows:
        print(f"| {s} | {setting} | {r:.4f} | {q:.0f} |")
    print("\n| system | build (s) | QPS at recall 0.90 | 0.95 | 0.98 |\n|---|---|---|---|---|")
    for s in builds:
        pts = [(r, q) for s2, _, r, q in rows if s2 == s]
        cells = []
        for target in (0.90, 0.95, 0.98):
            v = at_recall(pts, target)
            cells.append("–" if v is None else f"{v:.0f}")
        print(f"| {s} | {builds[s]:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
