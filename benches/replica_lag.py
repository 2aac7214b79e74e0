#!/usr/bin/env python3
"""How far a read replica trails its writer, on a moto bucket.

    python3 benches/replica_lag.py --vdbd target/release/vdbd \
        --vdbctl target/release/vdbctl --moto-server PATH/moto_server \
        --base B.fvecs --follow-ms 1000 --samples 40

A writer vdbd holds a sync=object collection loaded with `--base` (and
flushed); a replica vdbd (`--replica --follow-interval-ms`) follows it from
an empty data directory. Then, while a steady load imports `--load-rows`
rows per batch (upserts of base rows) in a loop:

- *write lag*: one marker row is inserted on the writer; from its
  acknowledgement, the replica is polled (`vdbctl get`, about 5 ms a call)
  until it returns the row. `--samples` markers, one every 0.5 s.
- *flush lag*: the writer flushes; from the flush's return, the replica is
  polled (`vdbctl describe`) until it serves the writer's manifest version.
  A few flushes.

Prints one JSON object per sample and a summary: p50/p99 of each, seconds.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from object_store import ctl, free_port, start_bucket, start_vdbd, stop  # noqa: E402


def poll(what, ok, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ok():
            return time.monotonic()
        time.sleep(0.005)
    sys.exit(f"error: {what} did not happen within {deadline} s")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--vdbd", "--vdbctl", "--moto-server", "--base"):
        ap.add_argument(a, required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--follow-ms", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--flushes", type=int, default=5)
    ap.add_argument("--load-rows", type=int, default=1000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vdb-lag-")
    port = free_port()
    procs = [subprocess.Popen([args.moto_server, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    stopping = threading.Event()
    try:
        env = start_bucket(f"http://127.0.0.1:{port}", "lag")
        url = "s3://lag/p"
        w, w_addr, _ = start_vdbd(args.vdbd, os.path.join(tmp, "w"), env,
                                  os.path.join(tmp, "w.log"), url)
        procs.append(w)
        ctl(args.vdbctl, w_addr, "create-collection", "lag", "--dim", str(args.dim),
            "--nlist", str(args.nlist), "--sync", "object")
        ctl(args.vdbctl, w_addr, "import", "lag", args.base, "--batch", "1000")
        ctl(args.vdbctl, w_addr, "flush", "lag")
        rows = json.loads(ctl(args.vdbctl, w_addr, "--json", "describe", "lag"))["rows"]
        r, r_addr, started = start_vdbd(
            args.vdbd, os.path.join(tmp, "r"), env, os.path.join(tmp, "r.log"), url,
            ["--replica", "--follow-interval-ms", str(args.follow_ms)])
        procs.append(r)
        print(json.dumps({"rows": rows, "replica_start_s": round(started, 3)}))

        # The steady load: upserts of base rows, batch after batch.
        chunk = os.path.join(tmp, "load.fvecs")
        with open(args.base, "rb") as f:
            rec = 4 + 4 * args.dim
            data = f.read(rec * args.load_rows)
        with open(chunk, "wb") as f:
            f.write(data)
        loaded = [0]

        def load():
            while not stopping.is_set():
                ctl(args.vdbctl, w_addr, "import", "lag", chunk, "--batch", str(args.load_rows))
                loaded[0] += args.load_rows
        t = threading.Thread(target=load)
        t.start()
        t0 = time.monotonic()

        write_lag = []
        vec = ",".join(["0.5"] * args.dim)
        for i in range(args.samples):
            mid = 1_000_000_000 + i
            ctl(args.vdbctl, w_addr, "insert", "lag", "--id", str(mid), "--vector", vec)
            acked = time.monotonic()
            seen = poll("the replica showing a marker", lambda: json.loads(ctl(
                args.vdbctl, r_addr, "--json", "get", "lag", "--ids", str(mid)))["rows"])
            write_lag.append(seen - acked)
            print(json.dumps({"write_lag_s": round(seen - acked, 4)}))
            time.sleep(0.5)
        flush_lag = []
        for _ in range(args.flushes):
            ctl(args.vdbctl, w_addr, "flush", "lag")
            done = time.monotonic()
            version = json.loads(ctl(args.vdbctl, w_addr, "--json", "describe", "lag"))[
                "manifest_version"]
            seen = poll("the replica serving the flush", lambda: json.loads(ctl(
                args.vdbctl, r_addr, "--json", "describe", "lag"))["manifest_version"] >= version)
            flush_lag.append(seen - done)
            print(json.dumps({"flush_lag_s": round(seen - done, 4), "version": version}))
        rate = loaded[0] / (time.monotonic() - t0)
        stopping.set()
        t.join()
        stop(r)
        stop(w)
        print(f"\nreplica lag, follow interval {args.follow_ms} ms, {rows} rows of dim "
              f"{args.dim}, load {rate:,.0f} rows/s (sync=object)")
        print(f"{'':>12} {'p50 s':>8} {'p99 s':>8} {'max s':>8}")
        for name, xs in (("write", write_lag), ("flush", flush_lag)):
            print(f"{name:>12} {pct(xs, 50):8.3f} {pct(xs, 99):8.3f} {max(xs):8.3f}")
    finally:
        stopping.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
