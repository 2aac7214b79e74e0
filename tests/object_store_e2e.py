#!/usr/bin/env python3
"""Real vdbd processes on a real S3-compatible server (moto).

    object_store_e2e.py --vdbd target/debug/vdbd --vdbctl target/debug/vdbctl \
        --moto-server PATH/moto_server --base data/digits/base.fvecs \
        --query data/digits/query.fvecs

1. vdbd A (data directory a/) keeps its collections in s3://vdb/e2e: a
   collection is created, the digits imported and flushed, a search
   answered; A stops on SIGTERM (exit 0).
2. vdbd B starts on an empty data directory b/ with the same bucket: it
   lists the collection, has every row, and answers the same search.
3. A starts again on a/ while B runs: it takes the collection over. B
   still acknowledges a write, but its flush is refused as fenced
   (FAILED_PRECONDITION), and so is every later write; A keeps working.
   B's SIGTERM then exits 3 (a collection could not be flushed).
4. sync=object: two clients import small files into a collection on A;
   A is killed with SIGKILL in the middle and its data directory deleted.
   vdbd C, on an empty directory, has every row of every import A
   acknowledged (and no more than those plus the ones in flight).
5. Read replica: vdbd R starts with --replica on an empty directory while
   C writes. R lists both collections, answers the search as C does, sees
   a sync=object write of C's before any flush, names C as the writer in
   describe, and refuses writes (FAILED_PRECONDITION, "read replica").
6. Snapshots: C snapshots a collection into the bucket's own repository
   and to another prefix (s3://vdb/backups); C restores the first as a
   new collection, which answers the search as the source did, and vdbd
   D on an empty directory restores the second.

Only the standard library; every process is killed on the way out.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

DEADLINE_SECS = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, ok):
    end = time.monotonic() + DEADLINE_SECS
    while time.monotonic() < end:
        if ok():
            return
        time.sleep(0.1)
    sys.exit(f"error: {what} did not happen within {DEADLINE_SECS} s")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, **kw):
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def start_vdbd(procs, vdbd, data_dir, env, log_path, *extra):
    out = open(log_path, "w")
    p = procs.start(
        [vdbd, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--object-store", "s3://vdb/e2e", "--log", "warn", *extra],
        stdout=out, stderr=subprocess.STDOUT, env=env)

    def addr():
        text = open(log_path).read()
        for line in text.splitlines():
            if line.startswith("vdbd listening on "):
                return line.split()[-1]
        if p.poll() is not None:
            sys.exit(f"error: vdbd exited {p.returncode}:\n{text}")
        return None
    wait_for("vdbd listening", lambda: addr() is not None)
    return p, addr()


def ctl(vdbctl, addr, *args, ok=True):
    r = subprocess.run([vdbctl, "--server", addr, *args], capture_output=True, text=True,
                       timeout=DEADLINE_SECS)
    if ok and r.returncode != 0:
        sys.exit(f"error: vdbctl {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


def describe(vdbctl, addr, name):
    return json.loads(ctl(vdbctl, addr, "--json", "describe", name).stdout)


def stop(p, want, log_path, says=None):
    p.send_signal(signal.SIGTERM)
    code = p.wait(timeout=DEADLINE_SECS)
    text = open(log_path).read()
    if code != want:
        sys.exit(f"error: vdbd exited {code} on SIGTERM, expected {want}:\n{text}")
    if says is not None and says not in text:
        sys.exit(f"error: vdbd's last words do not say {says!r}:\n{text}")


def main():
    ap = argparse.ArgumentParser()
    for a in ("--vdbd", "--vdbctl", "--moto-server", "--base", "--query"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="vdb-s3-e2e-")
    try:
        port = free_port()
        procs.start([args.moto_server, "-H", "127.0.0.1", "-p", str(port)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"

        def moto_up():
            try:
                urllib.request.urlopen(endpoint + "/", timeout=2)
                return True
            except OSError:
                return False
        wait_for("moto_server listening", moto_up)
        req = urllib.request.Request(endpoint + "/vdb", method="PUT")
        urllib.request.urlopen(req, timeout=10)

        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
                   AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_ALLOW_HTTP="true")
        a_dir, b_dir = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        search = ["--json", "search", "digits", "--file", args.query, "--row", "3", "--k", "10",
                  "--nprobe", "4"]

        # 1. A writes the collection into the bucket.
        a_log, b_log = os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")
        a, a_addr = start_vdbd(procs, args.vdbd, a_dir, env, a_log)
        ctl(args.vdbctl, a_addr, "create-collection", "digits", "--dim", "64", "--nlist", "16")
        ctl(args.vdbctl, a_addr, "import", "digits", args.base)
        ctl(args.vdbctl, a_addr, "flush", "digits")
        rows = describe(args.vdbctl, a_addr, "digits")["rows"]
        want = json.loads(ctl(args.vdbctl, a_addr, *search).stdout)["hits"]
        stop(a, 0, a_log)
        print(f"A wrote {rows} rows to s3://vdb/e2e and stopped")

        # 2. B, on an empty data directory, has it all.
        b, b_addr = start_vdbd(procs, args.vdbd, b_dir, env, b_log)
        listed = ctl(args.vdbctl, b_addr, "list").stdout
        if "digits" not in listed:
            sys.exit(f"error: B lists no digits collection:\n{listed}")
        got = describe(args.vdbctl, b_addr, "digits")["rows"]
        if got != rows:
            sys.exit(f"error: B has {got} rows, A wrote {rows}")
        answer = json.loads(ctl(args.vdbctl, b_addr, *search).stdout)["hits"]
        if answer != want:
            sys.exit(f"error: B answers differently:\n{answer}\nA answered:\n{want}")
        print(f"B, on an empty data directory, has the {got} rows and answers the same")

        # 3. A takes the collection over while B runs: B is fenced.
        a, a_addr = start_vdbd(procs, args.vdbd, a_dir, env, a_log)
        ctl(args.vdbctl, b_addr, "insert", "digits", "--id", "100000", "--vector",
            ",".join(["1"] * 64))
        r = ctl(args.vdbctl, b_addr, "flush", "digits", ok=False)
        if r.returncode == 0 or "fenced" not in r.stderr or "FailedPrecondition" not in r.stderr:
            sys.exit(f"error: B's flush after the takeover: exit {r.returncode}: {r.stderr}")
        r = ctl(args.vdbctl, b_addr, "insert", "digits", "--id", "100001", "--vector",
                ",".join(["1"] * 64), ok=False)
        if r.returncode == 0 or "fenced" not in r.stderr:
            sys.exit(f"error: B's write after being fenced: exit {r.returncode}: {r.stderr}")
        print("B's flush and later writes are refused: fenced")
        ctl(args.vdbctl, a_addr, "insert", "digits", "--id", "100002", "--vector",
            ",".join(["2"] * 64))
        ctl(args.vdbctl, a_addr, "flush", "digits")
        got = describe(args.vdbctl, a_addr, "digits")["rows"]
        if got != rows + 1:
            sys.exit(f"error: A has {got} rows after its write, expected {rows + 1}")
        stop(b, 3, b_log, says="sets aside")
        print(f"A carries on ({got} rows); B exits 3 on SIGTERM")

        # 4. sync=object: kill -9 the writer during a load, lose its disk.
        ctl(args.vdbctl, a_addr, "create-collection", "shipped", "--dim", "8", "--nlist", "4",
            "--sync", "object")
        acked, in_flight, lock = [], [], threading.Lock()
        killed = threading.Event()

        def importer(client):
            for n in range(10_000):
                if killed.is_set():
                    return
                first = client * 10_000_000 + n * 100
                path = os.path.join(tmp, f"rows-{client}-{n}.jsonl")
                with open(path, "w") as f:
                    for i in range(first, first + 100):
                        f.write(json.dumps({"id": i, "vector": [float((i * 7 + j) % 13) for j in range(8)]}) + "\n")
                with lock:
                    in_flight.append(first)
                r = ctl(args.vdbctl, a_addr, "import", "shipped", path, ok=False)
                with lock:
                    in_flight.remove(first)
                    if r.returncode == 0:
                        acked.append(first)
                if r.returncode != 0:
                    return
        threads = [threading.Thread(target=importer, args=(c,)) for c in range(2)]
        for t in threads:
            t.start()
        wait_for("20 acknowledged imports", lambda: len(acked) >= 20)
        with lock:
            maybe = len(in_flight)
            a.kill()
            a.wait()
            killed.set()
        for t in threads:
            t.join()
        subprocess.run(["rm", "-rf", a_dir], check=True)
        c_log = os.path.join(tmp, "c.log")
        c, c_addr = start_vdbd(procs, args.vdbd, os.path.join(tmp, "c"), env, c_log)
        got = describe(args.vdbctl, c_addr, "shipped")["rows"]
        if not len(acked) * 100 <= got <= (len(acked) + maybe) * 100:
            sys.exit(f"error: {got} rows after the node was lost; {len(acked)} imports of 100 "
                     f"were acknowledged, {maybe} in flight")
        for first in acked:
            ids = ",".join(str(i) for i in range(first, first + 100))
            r = json.loads(ctl(args.vdbctl, c_addr, "--json", "get", "shipped", "--ids", ids).stdout)
            if r["missing"]:
                sys.exit(f"error: acknowledged rows lost with the node: {r['missing'][:5]}")
        print(f"sync=object: A killed during a load and its disk deleted; C has all "
              f"{len(acked)} acknowledged imports ({got} rows)")

        # 5. A read replica follows C.
        r_log = os.path.join(tmp, "r.log")
        r, r_addr = start_vdbd(procs, args.vdbd, os.path.join(tmp, "r"), env, r_log,
                               "--replica", "--follow-interval-ms", "100")
        listed = ctl(args.vdbctl, r_addr, "list").stdout
        if "digits" not in listed or "shipped" not in listed:
            sys.exit(f"error: the replica lists:\n{listed}")
        want = json.loads(ctl(args.vdbctl, c_addr, *search).stdout)["hits"]
        answer = json.loads(ctl(args.vdbctl, r_addr, *search).stdout)["hits"]
        if answer != want:
            sys.exit(f"error: the replica answers differently:\n{answer}\nC answered:\n{want}")
        ctl(args.vdbctl, c_addr, "insert", "shipped", "--id", "7", "--vector",
            ",".join(["3"] * 8))
        wait_for("the replica showing C's unflushed write", lambda: json.loads(
            ctl(args.vdbctl, r_addr, "--json", "get", "shipped", "--ids", "7").stdout)["rows"])
        info, writer = describe(args.vdbctl, r_addr, "shipped"), describe(args.vdbctl, c_addr, "shipped")
        if (info["role"], writer["role"]) != ("replica", "writer") or info["writer"] != writer["writer"]:
            sys.exit(f"error: replica describe {info}, writer describe {writer}")
        r2 = ctl(args.vdbctl, r_addr, "insert", "shipped", "--id", "8", "--vector",
                 ",".join(["3"] * 8), ok=False)
        if r2.returncode == 0 or "read replica" not in r2.stderr or "FailedPrecondition" not in r2.stderr:
            sys.exit(f"error: a write to the replica: exit {r2.returncode}: {r2.stderr}")
        r3 = ctl(args.vdbctl, r_addr, "snapshot", "create", "digits", ok=False)
        if r3.returncode == 0 or "read replica" not in r3.stderr:
            sys.exit(f"error: a snapshot on the replica: exit {r3.returncode}: {r3.stderr}")
        print(f"replica R follows C ({info['seconds_behind']:.2f} s behind) and refuses writes")

        # 6. Snapshots: into the bucket's own repository (copied by the
        # store) and to another prefix given as a URL; C restores one, and
        # so does D, a new node on an empty directory.
        snap = json.loads(ctl(args.vdbctl, c_addr, "--json", "snapshot", "create", "digits",
                              "--name", "e2e").stdout)
        if snap["repository"] != "s3://vdb/e2e/snapshots" or snap["added_bytes"] != snap["bytes"]:
            sys.exit(f"error: snapshot {snap}")
        ctl(args.vdbctl, c_addr, "snapshot", "create", "digits", "--name", "away", "--to",
            "s3://vdb/backups")
        want = json.loads(ctl(args.vdbctl, c_addr, *search).stdout)["hits"]
        # Digits moves on: its nearest row to the query goes, and a compaction.
        ctl(args.vdbctl, c_addr, "delete", "digits", "--ids", str(want[0]["id"]))
        ctl(args.vdbctl, c_addr, "compact", "digits")
        ctl(args.vdbctl, c_addr, "snapshot", "restore", "e2e", "--as", "restored")
        restored_search = [a if a != "digits" else "restored" for a in search]
        answer = json.loads(ctl(args.vdbctl, c_addr, *restored_search).stdout)["hits"]
        if describe(args.vdbctl, c_addr, "restored")["rows"] != rows + 1 or answer != want:
            sys.exit(f"error: the restored collection answers {answer}, digits {want}")
        if json.loads(ctl(args.vdbctl, c_addr, *search).stdout)["hits"] == want:
            sys.exit("error: the deletion did not change digits' answer")
        stop(r, 0, r_log)
        stop(c, 0, c_log)
        d_log = os.path.join(tmp, "d.log")
        d, d_addr = start_vdbd(procs, args.vdbd, os.path.join(tmp, "d"), env, d_log)
        listed = ctl(args.vdbctl, d_addr, "snapshot", "list", "--from", "s3://vdb/backups").stdout
        if "away" not in listed:
            sys.exit(f"error: D lists in s3://vdb/backups:\n{listed}")
        ctl(args.vdbctl, d_addr, "snapshot", "restore", "away", "--from", "s3://vdb/backups",
            "--as", "again")
        answer = json.loads(ctl(args.vdbctl, d_addr, *[a if a != "digits" else "again"
                                                       for a in search]).stdout)["hits"]
        if answer != want:
            sys.exit(f"error: D's restore answers {answer}, C answered {want}")
        stop(d, 0, d_log)
        print("snapshots in the bucket and at another prefix restore on C and on a new node D")
        print("object store end to end: ok")
    finally:
        procs.kill_all()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
