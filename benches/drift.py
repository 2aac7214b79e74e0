#!/usr/bin/env python3
"""Does recall decay as a collection grows with drifting data?

Reorders a texmex data set along its first principal component (so the first
10 % of rows covers one end of the space), remaps the ground truth to the new
row numbers, then measures three indexes at the same nlist and nprobe:

1. vdb, rows inserted in that order through the engine, flushing every 10 %:
   the first flush trains on the first 10 %, and the default policy
   retrains as the rows drift and rebalances lists that become uneven;
2. the same with automatic retraining off (trained once, on the first 10 %);
3. churn: the first half of the rows inserted with copies of it under the
   second half's ids, then those ids replaced by the second half's rows in
   order (`vdbctl bench --churn`): half the collection replaced by rows
   from the other end of the space, with the default policy and with
   retraining off;
4. vdb built from scratch on all rows (in-process, `vdbctl bench` without
   `--data-dir`).

    python3 benches/drift.py --base B.fvecs --query Q.fvecs --gt G.ivecs --nlist 256 --nprobe 8 \
        [--retrain GROWTH,DRIFT,IMBALANCE ...]

Each `--retrain` adds runs of 1. and 3. with that retraining policy (e.g.
`0,0,1.2`: local rebalancing only; `1.5,1.5,0`: the global policy before
local rebalancing).
"""

import argparse
import json
import os
import subprocess

import numpy as np

from faiss_compare import read_xvecs


def write_xvecs(path, a):
    a = np.ascontiguousarray(a)
    rec = np.empty((a.shape[0], a.shape[1] + 1), dtype=np.int32 if a.dtype == np.int32 else np.float32)
    rec.view(np.int32)[:, 0] = a.shape[1]
    rec[:, 1:] = a
    rec.tofile(path)


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--gt", required=True)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--nprobe", default="8")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--work", default="/tmp/vdb-drift")
    ap.add_argument("--vdbctl", default="target/release/vdbctl")
    ap.add_argument("--retrain", action="append", default=[], metavar="GROWTH,DRIFT,IMBALANCE",
                    help="also run with this retraining policy (repeatable)")
    args = ap.parse_args()

    xb = read_xvecs(args.base, np.float32)
    gt = read_xvecs(args.gt, np.int32)
    centred = xb - xb.mean(axis=0)
    # First principal component by power iteration on the covariance.
    v = np.ones(xb.shape[1], dtype=np.float64) / np.sqrt(xb.shape[1])
    for _ in range(50):
        v = centred.T @ (centred @ v)
        v /= np.linalg.norm(v)
    order = np.argsort(centred @ v, kind="stable")
    new_pos = np.empty_like(order)
    new_pos[order] = np.arange(len(order))
    os.makedirs(args.work, exist_ok=True)
    base = os.path.join(args.work, "base.fvecs")
    gtp = os.path.join(args.work, "gt.ivecs")
    write_xvecs(base, xb[order])
    write_xvecs(gtp, new_pos[gt].astype(np.int32))

    common = ["--base", base, "--query", args.query, "--gt", gtp, "--nlist", str(args.nlist),
              "--nprobe", args.nprobe, "--k", str(args.k), "--json", "--min-seconds", "0.5"]
    tenth = str(max(1, len(xb) // 10))
    data = os.path.join(args.work, "data")
    runs = [
        ("inserted in PC1 order, default policy", run([args.vdbctl, "bench", *common, "--data-dir", data, "--flush-rows", tenth])),
        *[(f"inserted in PC1 order, --retrain {p}", run([args.vdbctl, "bench", *common, "--data-dir", data, "--flush-rows", tenth, "--retrain", p]))
          for p in args.retrain],
        ("inserted in PC1 order, retraining off", run([args.vdbctl, "bench", *common, "--data-dir", data, "--flush-rows", tenth, "--no-retrain"])),
        ("half replaced by drifting rows, default policy", run([args.vdbctl, "bench", *common, "--data-dir", data, "--flush-rows", tenth, "--churn"])),
        *[(f"half replaced by drifting rows, --retrain {p}", run([args.vdbctl, "bench", *common, "--data-dir", data, "--flush-rows", tenth, "--churn", "--retrain", p]))
          for p in args.retrain],
        ("half replaced by drifting rows, retraining off", run([args.vdbctl, "bench", *common, "--data-dir", data, "--flush-rows", tenth, "--churn", "--no-retrain"])),
        ("built from scratch on all rows", run([args.vdbctl, "bench", *common])),
    ]
    print(f"| index ({len(xb):,} rows, nlist {args.nlist}) | nprobe | recall@{args.k} | vectors scanned / query | list imbalance | QPS 1-thread |")
    print("|---|---|---|---|---|---|")
    for name, rows in runs:
        for r in rows:
            print(f"| {name} | {r['nprobe']} | {r['recall']:.4f} | {r['scanned_per_query']:,.0f} | {r['imbalance']:.2f} | {r['qps']:,.0f} |")


if __name__ == "__main__":
    main()
