#!/usr/bin/env python3
"""vdbd with its collections on object storage against vdbd on local disk,
side by side in one run, and a cold start from an empty data directory.

    python3 benches/object_store.py --vdbd target/release/vdbd \
        --vdbctl target/release/vdbctl --moto-server PATH/moto_server \
        --rounds 2 -- --base B.fvecs --query Q.fvecs --gt G.ivecs \
        --nlist 1024 --nprobe 16 --k 10

Each round runs `vdbctl bench --server ADDR` (everything after `--`) once
against a vdbd on a local data directory and once against a vdbd whose
collections live in a bucket (on moto, or on s3s-fs with `--s3s-fs PATH`
in place of `--moto-server`), alternating which goes first; with
`--object-sync object` the bucket's collection uses sync=object (the local
one keeps its default, always). After each
object-storage run the server is stopped (SIGTERM: it flushes) and a new one
is started on an empty data directory with the same bucket (with
`--cold-cache-bytes N`, a cache bounded to N bytes): the time from
starting it to `listening` (it lists the bucket and fetches the header,
tables and ids of every segment the manifests name before it serves), the
first three search round trips (`vdbctl search`, the client's own timing:
the first fetches the probed lists' byte ranges), then the searches of
`vdbctl bench --existing` on that node, and the disk its cache takes.

Prints one JSON object per measurement and a summary table.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

DEADLINE_SECS = 600


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, ok, deadline=DEADLINE_SECS):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ok():
            return
        time.sleep(0.02)
    sys.exit(f"error: {what} did not happen within {deadline} s")


def start_vdbd(vdbd, data_dir, env, log_path, url=None, extra=()):
    args = [vdbd, "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--log", "warn"]
    if url:
        args += ["--object-store", url]
    args += list(extra)
    out = open(log_path, "w")
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    addr = []

    def listening():
        for line in open(log_path).read().splitlines():
            if line.startswith("vdbd listening on "):
                addr.append(line.split()[-1])
                return True
        if p.poll() is not None:
            sys.exit(f"error: vdbd exited {p.returncode}:\n{open(log_path).read()}")
        return False
    wait_for("vdbd listening", listening)
    return p, addr[0], time.monotonic() - t0


def start_bucket(endpoint, bucket):
    """Waits for the server at `endpoint`, creates `bucket` (moto; None:
    s3s-fs, whose buckets are directories), and returns the environment a
    vdbd needs to use it."""
    def up():
        try:
            urllib.request.urlopen(endpoint + "/", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
    wait_for("the S3 server", up, 60)
    if bucket:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"))
    return dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
                AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                AWS_ALLOW_HTTP="true")


def stop(p):
    p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=DEADLINE_SECS)
    if code != 0:
        sys.exit(f"error: vdbd exited {code}")


def ctl(vdbctl, addr, *args):
    """Runs `vdbctl --server ADDR ARGS`; its output, or exits with its error."""
    r = subprocess.run([vdbctl, "--server", addr, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"error: vdbctl {' '.join(args)}: {r.stderr}")
    return r.stdout


def bench(vdbctl, addr, bench_args):
    r = subprocess.run([vdbctl, "--server", addr, "--json", "bench", "--server", addr,
                        *bench_args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"error: vdbctl bench: {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def bucket_bytes(endpoint, bucket, prefix):
    total, count, token = 0, 0, None
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    while True:
        q = f"{endpoint}/{bucket}?list-type=2&prefix={prefix}"
        if token:
            q += "&continuation-token=" + urllib.parse.quote(token)
        root = ET.fromstring(urllib.request.urlopen(q, timeout=60).read())
        for c in root.iter(ns + "Contents"):
            total += int(c.find(ns + "Size").text)
            count += 1
        t = root.find(ns + "NextContinuationToken")
        if t is None:
            return total, count
        token = t.text


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def disk_bytes(path):
    """Bytes the files under `path` take on disk (sparse cache files take
    less than their length)."""
    return sum(os.stat(os.path.join(d, f)).st_blocks * 512
               for d, _, fs in os.walk(path) for f in fs)


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: object_store.py [options] -- BENCH ARGS")
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--vdbd", required=True)
    ap.add_argument("--vdbctl", required=True)
    server = ap.add_mutually_exclusive_group(required=True)
    server.add_argument("--moto-server", help="moto_server to run the bucket on")
    server.add_argument("--s3s-fs", help="s3s-fs to run the bucket on (range GETs read only the range)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cold-cache-bytes", default=None,
                    help="--cache-bytes of the node started cold (default unbounded)")
    ap.add_argument("--object-sync", default=None,
                    help="the bench collection's sync mode on object storage (e.g. object)")
    args = ap.parse_args(argv[:cut])
    bench_args = argv[cut + 1:]
    query = bench_args[bench_args.index("--query") + 1]

    tmp = tempfile.mkdtemp(prefix="vdb-objbench-")
    port = free_port()
    if args.moto_server:
        cmd = [args.moto_server, "-H", "127.0.0.1", "-p", str(port)]
        root = None
    else:
        root = os.path.join(tmp, "s3")
        os.makedirs(os.path.join(root, "bench"))
        cmd = [args.s3s_fs, "--host", "127.0.0.1", "--port", str(port),
               "--access-key", "test", "--secret-key", "test", root]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [server]
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = start_bucket(endpoint, "bench" if root is None else None)
        results = []
        for rnd in range(args.rounds):
            order = ["local", "object"] if rnd % 2 == 0 else ["object", "local"]
            for mode in order:
                data = os.path.join(tmp, f"{mode}-{rnd}")
                url = f"s3://bench/r{rnd}" if mode == "object" else None
                p, addr, _ = start_vdbd(args.vdbd, data, env, os.path.join(tmp, "vdbd.log"), url)
                procs.append(p)
                extra = ["--sync", args.object_sync] if mode == "object" and args.object_sync else []
                lines = bench(args.vdbctl, addr, bench_args + extra)
                stop(p)
                row = {"round": rnd, "mode": mode, "bench": lines}
                if mode == "object":
                    if root is None:
                        stored, objects = bucket_bytes(endpoint, "bench", f"r{rnd}/")
                    else:
                        stored = dir_bytes(os.path.join(root, "bench", f"r{rnd}"))
                        objects = sum(len(fs) for _, _, fs in
                                      os.walk(os.path.join(root, "bench", f"r{rnd}")))
                    row.update(bucket_bytes=stored, objects=objects, cache_bytes=dir_bytes(data))
                    # A new node: empty data directory, same bucket.
                    cold = os.path.join(tmp, f"cold-{rnd}")
                    cache = ["--cache-bytes", args.cold_cache_bytes] if args.cold_cache_bytes else []
                    p, addr, started = start_vdbd(args.vdbd, cold, env,
                                                  os.path.join(tmp, "cold.log"), url, cache)
                    procs.append(p)
                    trips = []
                    for row_no in (0, 1, 2):
                        r = subprocess.run(
                            [args.vdbctl, "--server", addr, "--json", "search", "bench",
                             "--file", query, "--row", str(row_no), "--k", "10"],
                            capture_output=True, text=True, check=True)
                        trips.append(json.loads(r.stdout)["ms"])
                    after_trips = disk_bytes(cold)
                    warm = bench(args.vdbctl, addr, bench_args + ["--existing"])
                    stop(p)
                    row.update(cold_start_s=round(started, 3), first_search_ms=trips[0],
                               next_search_ms=trips[1:], cold_disk_after_3=after_trips,
                               cold_disk_after_bench=disk_bytes(cold), cold_bench=warm)
                results.append(row)
                print(json.dumps(row), flush=True)
                shutil.rmtree(data, ignore_errors=True)

        print()
        print("| round | mode | sync | nprobe | recall | QPS | p50 ms | Upsert rows/s (writers) | Import rows/s | flush+train s | bucket MB | cold start s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            for b in r["bench"]:
                bucket = r.get("bucket_bytes")
                print(f"| {r['round']} | {r['mode']} | {b.get('sync') or 'always'} | {b.get('nprobe')} | "
                      f"{b.get('recall'):.4f} | {b.get('qps'):.0f} | {b.get('p50_ms'):.3f} | "
                      f"{b.get('upsert_rows_per_s', 0):.0f} ({b.get('upsert_writers')}) | "
                      f"{b.get('ingest_rows_per_s', 0):.0f} | {b.get('train_s', 0):.2f} | "
                      f"{'' if bucket is None else round(bucket / 1e6, 1)} | "
                      f"{r.get('cold_start_s', '')} |")
                for b in r.get("cold_bench", []):
                    print(f"| {r['round']} | cold node, cache {args.cold_cache_bytes or 'unbounded'} | | "
                          f"{b.get('nprobe')} | {b.get('recall'):.4f} | {b.get('qps'):.0f} | "
                          f"{b.get('p50_ms'):.3f} | | | | "
                          f"disk {r['cold_disk_after_bench'] / 1e6:.1f} MB | "
                          f"first search {r['first_search_ms']:.1f} ms |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
