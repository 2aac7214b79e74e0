#!/usr/bin/env python3
"""Writes a synthetic clustered data set in texmex format, with a fixed seed.

    python3 benches/gen_synthetic.py --out /tmp/synth1m --rows 1000000 --dim 128

Points are drawn around 2,000 Gaussian centres whose populations follow a
Zipf-like law (a few big clusters, many small ones) and whose spreads vary,
so that k-means has real structure to find and lists end up uneven, as with
real embeddings. Queries come from the same distribution; gt.ivecs holds the
exact 100 nearest base rows of each query under L2 (computed with faiss's
exact IndexFlatL2).
"""

import argparse
import os

import numpy as np


def write_xvecs(path, a):
    a = np.ascontiguousarray(a)
    n, d = a.shape
    rec = np.empty((n, d + 1), dtype=np.int32 if a.dtype == np.int32 else np.float32)
    rec.view(np.int32)[:, 0] = d
    rec[:, 1:] = a
    rec.tofile(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--centres", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.centres, args.dim)).astype(np.float32) * 4.0
    weights = 1.0 / np.arange(1, args.centres + 1) ** 0.7
    weights /= weights.sum()
    spread = rng.uniform(0.5, 2.0, args.centres).astype(np.float32)

    def draw(n):
        c = rng.choice(args.centres, size=n, p=weights)
        return (centres[c] + rng.standard_normal((n, args.dim)).astype(np.float32) * spread[c, None]).astype(np.float32)

    base = draw(args.rows)
    queries = draw(args.queries)
    os.makedirs(args.out, exist_ok=True)
    write_xvecs(os.path.join(args.out, "base.fvecs"), base)
    write_xvecs(os.path.join(args.out, "query.fvecs"), queries)
    import faiss

    flat = faiss.IndexFlatL2(args.dim)
    flat.add(base)
    _, gt = flat.search(queries, 100)
    write_xvecs(os.path.join(args.out, "gt.ivecs"), gt.astype(np.int32))
    print(f"wrote {args.rows} base, {args.queries} queries, dim {args.dim} to {args.out}")


if __name__ == "__main__":
    main()
