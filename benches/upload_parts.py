#!/usr/bin/env python3
"""How long a rewrite of a large collection takes on object storage, with
its file's parts uploaded one at a time against several at once, side by
side in one run on one moto bucket.

    python3 benches/upload_parts.py --vdbd target/release/vdbd \
        --vdbctl target/release/vdbctl --moto-server PATH/moto_server \
        --base synth1m/base.fvecs --nlist 1024 --parts 1,4 --rounds 2

For each round and each `--parts` value (the order alternating between
rounds), a vdbd started with `--object-store-option
upload_parts_in_flight=N` imports `--base` into a new collection (one
flush, which trains), deletes a few rows, and then `vdbctl compact`
rewrites every row into one segment — written locally, then uploaded in
32 MiB parts — and publishes it. The compaction's wall time is the
measurement (the local rewrite is the same in every run; the difference is
the upload).

Prints one JSON object per run and a summary.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from object_store import ctl, dir_bytes, free_port, start_bucket, start_vdbd, stop  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    for a in ("--vdbd", "--vdbctl", "--moto-server", "--base"):
        ap.add_argument(a, required=True)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--parts", default="1,4")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    parts = [int(p) for p in args.parts.split(",")]
    with open(args.base, "rb") as f:
        dim = int.from_bytes(f.read(4), "little")

    tmp = tempfile.mkdtemp(prefix="vdb-upload-parts-")
    port = free_port()
    moto = subprocess.Popen([args.moto_server, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = start_bucket(f"http://127.0.0.1:{port}", "bench")
        results = []
        for rnd in range(args.rounds):
            order = parts if rnd % 2 == 0 else list(reversed(parts))
            for n in order:
                data = os.path.join(tmp, f"p{n}-{rnd}")
                p, addr, _ = start_vdbd(
                    args.vdbd, data, env, os.path.join(tmp, "vdbd.log"),
                    f"s3://bench/p{n}-{rnd}",
                    ["--object-store-option", f"upload_parts_in_flight={n}"])
                ctl(args.vdbctl, addr, "create-collection", "c", "--dim", str(dim),
                    "--nlist", str(args.nlist), "--flush-rows", "100000000")
                ctl(args.vdbctl, addr, "import", "c", args.base)
                ctl(args.vdbctl, addr, "flush", "c")
                ctl(args.vdbctl, addr, "delete", "c", "--ids", "0,1,2")
                t = time.monotonic()
                ctl(args.vdbctl, addr, "compact", "c")
                secs = time.monotonic() - t
                stop(p)
                row = {"round": rnd, "parts_in_flight": n, "compact_s": round(secs, 3),
                       "cache_mb": round(dir_bytes(data) / 1e6, 1)}
                results.append(row)
                print(json.dumps(row), flush=True)
                shutil.rmtree(data, ignore_errors=True)
        print()
        for n in parts:
            runs = [r["compact_s"] for r in results if r["parts_in_flight"] == n]
            print(f"parts in flight {n}: compaction {min(runs):.2f}-{max(runs):.2f} s")
    finally:
        moto.kill()
        moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
