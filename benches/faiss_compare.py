#!/usr/bin/env python3
"""Side-by-side IVF_Flat benchmark: faiss `IVF{nlist},Flat` against `vdbctl bench`.

Both run in this one invocation, on the same files, with the same nlist,
nprobe sweep, k, k-means iterations, seed and sample cap, so their numbers
are comparable. Prints a Markdown report (used verbatim in
docs/benchmarks.md).

    pip install faiss-cpu numpy
    cargo build --release -p vdbctl
    python3 benches/faiss_compare.py --base B.fvecs --query Q.fvecs --gt G.ivecs \
        --nlist 256 --nprobe 1,2,4,8,16,32,64 --k 10

Single-thread QPS is measured two ways for both: one search call per query
(what a server does with one request; faiss pays Python's per-call overhead,
a few microseconds) and one call for all queries on one thread (both then
run the coarse search of many queries as one matrix product). Batch QPS uses
every core for both.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def read_xvecs(path, dtype):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        sys.exit(f"{path}: empty file")
    dim = int(raw[:4].view(np.int32)[0])
    width = np.dtype(dtype).itemsize
    rec = 4 + dim * width
    if raw.size % rec:
        sys.exit(f"{path}: size is not a multiple of the record size {rec}")
    return raw.reshape(-1, rec)[:, 4:].copy().view(dtype).reshape(-1, dim)


def read_vectors(path):
    if path.endswith(".fvecs"):
        return read_xvecs(path, np.float32)
    if path.endswith(".bvecs"):
        return read_xvecs(path, np.uint8).astype(np.float32)
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32)
    sys.exit(f"{path}: unknown extension")


def recall_at(I, gt, k):
    hits = 0
    for row, want in zip(I, gt):
        hits += len(set(int(x) for x in row[:k]) & set(int(x) for x in want[:k]))
    return hits / (len(gt) * k)


def timed_loop(fn, n, min_seconds):
    """Runs fn(i) for i in 0..n repeatedly until min_seconds; returns latencies."""
    lat = []
    start = time.perf_counter()
    while True:
        for i in range(n):
            t = time.perf_counter()
            fn(i)
            lat.append(time.perf_counter() - t)
        if time.perf_counter() - start >= min_seconds:
            break
    return lat, time.perf_counter() - start


def batch_throughput(index, xq, k, min_seconds):
    """Queries per second of whole-set search calls, repeated until min_seconds."""
    n = 0
    t = time.perf_counter()
    while True:
        index.search(xq, k)
        n += len(xq)
        if time.perf_counter() - t >= min_seconds:
            break
    return n / (time.perf_counter() - t)


def run_faiss(args, xb, xq, gt):
    import faiss

    d = xb.shape[1]
    threads = args.threads or os.cpu_count()
    faiss.omp_set_num_threads(threads)
    metric = faiss.METRIC_L2 if args.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if args.metric == "cosine":
        xb = xb / np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-30)
        xq = xq / np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-30)
    quantizer = faiss.IndexFlatL2(d) if metric == faiss.METRIC_L2 else faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, args.nlist, metric)
    index.cp.niter = args.niter
    index.cp.seed = args.seed
    index.cp.max_points_per_centroid = args.max_points_per_centroid
    t = time.perf_counter()
    index.train(xb)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    index.add(xb)
    build_s = time.perf_counter() - t
    path = "/tmp/faiss_compare.index"
    faiss.write_index(index, path)
    disk = os.path.getsize(path)
    os.remove(path)
    sizes = np.array([index.invlists.list_size(i) for i in range(args.nlist)], dtype=np.float64)
    imbalance = args.nlist * (sizes**2).sum() / sizes.sum() ** 2
    rows = []
    for nprobe in args.nprobe:
        nprobe = min(nprobe, args.nlist)
        index.nprobe = nprobe
        faiss.omp_set_num_threads(threads)
        faiss.cvar.indexIVF_stats.reset()
        _, I = index.search(xq, args.k)
        scanned = faiss.cvar.indexIVF_stats.ndis / len(xq)
        rec = recall_at(I, gt, args.k)
        faiss.omp_set_num_threads(1)
        lat, total = timed_loop(lambda i: index.search(xq[i : i + 1], args.k), len(xq), args.min_seconds)
        qps_calls = len(lat) / total
        lat.sort()
        p50 = lat[int(round((len(lat) - 1) * 0.5))] * 1e3
        p99 = lat[int(round((len(lat) - 1) * 0.99))] * 1e3
        qps_1t_batch = batch_throughput(index, xq, args.k, args.min_seconds)
        faiss.omp_set_num_threads(threads)
        batch = batch_throughput(index, xq, args.k, args.min_seconds)
        rows.append(
            dict(nprobe=nprobe, recall=rec, qps=qps_calls, qps_1t_batch=qps_1t_batch, p50_ms=p50,
                 p99_ms=p99, batch_qps=batch, scanned_per_query=scanned, train_s=train_s,
                 build_s=build_s, disk_bytes=disk, imbalance=imbalance)
        )
    return rows


def run_vdb(args):
    cmd = [args.vdbctl, "bench", "--base", args.base, "--query", args.query, "--nlist", str(args.nlist),
           "--nprobe", ",".join(map(str, args.nprobe)), "--k", str(args.k), "--metric", args.metric,
           "--seed", str(args.seed), "--niter", str(args.niter),
           "--max-points-per-centroid", str(args.max_points_per_centroid),
           "--min-seconds", str(args.min_seconds), "--json"]
    if args.gt:
        cmd += ["--gt", args.gt]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def at_recall(rows, key, target):
    """QPS interpolated linearly between the sweep points around `target` recall."""
    pts = sorted((r["recall"], r[key]) for r in rows)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return None


def fmt(x, digits=0):
    return "—" if x is None else f"{x:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--gt")
    ap.add_argument("--nlist", type=int, required=True)
    ap.add_argument("--nprobe", default="1,2,4,8,16,32,64")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    ap.add_argument("--threads", type=int)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--max-points-per-centroid", type=int, default=256)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--vdbctl", default="target/release/vdbctl")
    args = ap.parse_args()
    args.nprobe = [int(x) for x in args.nprobe.split(",")]

    xb = read_vectors(args.base)
    xq = read_vectors(args.query)
    if args.gt:
        gt = read_xvecs(args.gt, np.int32)[:, : args.k]
    else:
        import faiss
        flat = faiss.IndexFlatL2(xb.shape[1]) if args.metric == "l2" else faiss.IndexFlatIP(xb.shape[1])
        flat.add(xb)
        _, gt = flat.search(xq, args.k)

    vdb = run_vdb(args)
    fa = run_faiss(args, xb, xq, gt)

    print(f"### {os.path.basename(os.path.dirname(os.path.abspath(args.base)))}: {xb.shape[0]:,} × {xb.shape[1]}, "
          f"{len(xq):,} queries, nlist={args.nlist}, k={args.k}, {args.metric}\n")
    v0, f0 = vdb[0], fa[0]
    print(f"| | vdb | faiss | vdb / faiss |\n|---|---|---|---|")
    print(f"| k-means train (s) | {v0['train_s']:.2f} | {f0['train_s']:.2f} | {v0['train_s'] / f0['train_s']:.2f} |")
    print(f"| build: assign + write (s) | {v0['build_s']:.2f} | {f0['build_s']:.2f} (add + write) | {v0['build_s'] / f0['build_s']:.2f} |")
    print(f"| bytes on disk | {v0['disk_bytes']:,} | {f0['disk_bytes']:,} | {v0['disk_bytes'] / f0['disk_bytes']:.2f} |")
    print(f"| list imbalance | {v0['imbalance']:.2f} | {f0['imbalance']:.2f} | |")
    print(f"| segment open (ms) | {v0['open_ms']:.2f} | | |")
    print()
    print("| nprobe | recall vdb / faiss | 1 query per call, 1 thread: vdb / faiss QPS | ratio | one batch call, 1 thread: vdb / faiss QPS | ratio | batch, all threads: vdb / faiss QPS | ratio | p50 ms vdb / faiss | p99 ms vdb / faiss | scanned/query vdb / faiss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for v, f in zip(vdb, fa):
        print(f"| {v['nprobe']} | {v['recall']:.4f} / {f['recall']:.4f} | {fmt(v['qps'])} / {fmt(f['qps'])} | "
              f"**{v['qps'] / f['qps']:.2f}** | {fmt(v['batch_qps_1t'])} / {fmt(f['qps_1t_batch'])} | "
              f"**{v['batch_qps_1t'] / f['qps_1t_batch']:.2f}** | {fmt(v['batch_qps'])} / {fmt(f['batch_qps'])} | "
              f"**{v['batch_qps'] / f['batch_qps']:.2f}** | {v['p50_ms']:.3f} / {f['p50_ms']:.3f} | "
              f"{v['p99_ms']:.3f} / {f['p99_ms']:.3f} | {v['scanned_per_query']:,.0f} / {f['scanned_per_query']:,.0f} |")
    print()
    print("QPS at equal recall (linear interpolation between sweep points):\n")
    print("| target recall@10 | 1 query per call: vdb / faiss | ratio | one batch call, 1 thread: vdb / faiss | ratio |\n|---|---|---|---|---|")
    for target in (0.90, 0.95):
        qv, qf = at_recall(vdb, "qps", target), at_recall(fa, "qps", target)
        bv, bf = at_recall(vdb, "batch_qps_1t", target), at_recall(fa, "qps_1t_batch", target)
        r1 = f"{qv / qf:.2f}" if qv and qf else "—"
        r2 = f"{bv / bf:.2f}" if bv and bf else "—"
        print(f"| {target:.2f} | {fmt(qv)} / {fmt(qf)} | {r1} | {fmt(bv)} / {fmt(bf)} | {r2} |")
    print(f"\nvdb kernels: {v0['isa']}, threads: {v0['threads']}, peak RSS of vdbctl: {v0.get('peak_rss_bytes', 0) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
