#!/usr/bin/env python3
"""IVF_RABITQ against faiss IndexIVFRaBitQ + IndexRefineFlat and hnswlib,
one run, searches on one thread: one query per call, and (with --batched)
the whole query set in one call; every build on the same two threads.

    pip install faiss-cpu hnswlib numpy
    python3 benches/rabitq_compare.py --data DIR --nlist 256 [--batched]

DIR holds texmex files (base.fvecs, query.fvecs, gt.ivecs). vdb's side is
`vdbctl bench --json --threads 2` (release build, made by this script) on
the same files, once with --index-type ivf_flat and once with ivf_rabitq
(epsilon 1.9): a segment written and mapped as the engine writes it,
vdb's own k-means; its batched figure is `batch_qps_1t`. faiss's IVF uses
the same nlist and nprobe sweep, refining k_factor x k candidates
exactly (each --k-factor in turn); hnswlib uses M=16, ef_construction=200
and an ef sweep. Prints a
Markdown table of every point and the QPS each reaches at recall@10 0.90,
0.95 and 0.98 (linear between measured points).
"""


import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


def write_vecs(path, rows):
    rows = np.ascontiguousarray(rows)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.int32)
    out[:, 0] = rows.shape[1]
    out[:, 1:] = rows.view(np.int32)
    out.tofile(path)


def recall(found, gt, k):
    return np.mean([len(set(f[:k]) & set(g[:k])) / k for f, g in zip(found, gt)])


def one_at_a_time(search, queries):
    out = []
    t = time.perf_counter()
    for q in queries:
        out.append(search(q[None, :]))
    return out, len(queries) / (time.perf_counter() - t)


def all_at_once(search, queries):
    """The whole query set in one call, repeated for at least a second."""
    t, calls = time.perf_counter(), 0
    while True:
        out = search(queries)
        calls += 1
        if time.perf_counter() - t >= 1.0:
            break
    return list(out), calls * len(queries) / (time.perf_counter() - t)


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
    ap.add_argument("--k-factor", default="4", help="comma-separated refine factors, each swept")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batched", action="store_true", help="also the whole query set per call")
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
    batched = []  # the same, the whole query set per call
    builds = {}
    # vdb reads the query and truth files: cut to --queries rows.
    tmp = tempfile.mkdtemp()
    queries_path, gt_path = os.path.join(tmp, "query.fvecs"), os.path.join(tmp, "gt.ivecs")
    write_vecs(queries_path, queries)
    write_vecs(gt_path, gt)

    subprocess.run(["cargo", "build", "-q", "--release", "-p", "vdbctl"], check=True)
    for index in ("ivf_flat", "ivf_rabitq"):
        system = f"vdb {index}"
        out = subprocess.run(
            ["target/release/vdbctl", "bench", "--json", "--threads", "2", "--nlist", str(a.nlist),
             "--nprobe", a.nprobe, "--k", str(k), "--index-type", index,
             "--base", os.path.join(a.data, "base.fvecs"), "--query", queries_path,
             "--gt", gt_path],
            check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            r = json.loads(line)
            builds[system] = r["train_s"] + r["build_s"]
            rows.append((system, f"nprobe {r['nprobe']}", r["recall"], r["qps"]))
            if a.batched:
                batched.append((system, f"nprobe {r['nprobe']}", r["recall"], r["batch_qps_1t"]))

    faiss.omp_set_num_threads(2)
    t = time.perf_counter()
    quantizer = faiss.IndexFlatL2(dim)
    ivf = faiss.IndexIVFRaBitQ(quantizer, dim, a.nlist)
    ivf.train(base)
    refined = faiss.IndexRefineFlat(ivf)
    refined.add(base)
    build = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    for kf in [float(x) for x in a.k_factor.split(",")]:
        system = f"faiss IVFRaBitQ+refine k_factor {kf:g}"
        builds[system] = build
        refined.k_factor = kf
        for nprobe in nprobes:
            ivf.nprobe = nprobe
            found, qps = one_at_a_time(lambda q: refined.search(q, k)[1][0], queries)
            rows.append((system, f"nprobe {nprobe}", recall(found, gt, k), qps))
            if a.batched:
                found, qps = all_at_once(lambda qs: refined.search(qs, k)[1], queries)
                batched.append((system, f"nprobe {nprobe}", recall(found, gt, k), qps))

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
        if a.batched:
            found, qps = all_at_once(lambda qs: h.knn_query(qs, k=k)[0], queries)
            batched.append(("hnswlib M=16", f"ef {ef}", recall(found, gt, k), qps))

    print(f"{n} x {dim}, nlist {a.nlist}, {len(queries)} queries, k {k}, searches on one thread"
          f"; builds on 2 threads\n")
    tables = [("one query per call", rows)]
    if a.batched:
        tables.append(("all queries in one call", batched))
    print("| system | setting | recall@10 | " + " | ".join(f"QPS, {t}" for t, _ in tables) + " |")
    print("|---|---|---|" + "---|" * len(tables))
    for i, (s, setting, r, q) in enumerate(rows):
        extra = "".join(f" {t[i][3]:.0f} |" for _, t in tables[1:])
        print(f"| {s} | {setting} | {r:.4f} | {q:.0f} |{extra}")
    for title, points in tables:
        print(f"\n{title}:\n\n| system | build (s) | QPS at recall 0.90 | 0.95 | 0.98 |\n|---|---|---|---|---|")
        for s in builds:
            pts = [(r, q) for s2, _, r, q in points if s2 == s]
            cells = []
            for target in (0.90, 0.95, 0.98):
                v = at_recall(pts, target)
                cells.append("–" if v is None else f"{v:.0f}")
            print(f"| {s} | {builds[s]:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
