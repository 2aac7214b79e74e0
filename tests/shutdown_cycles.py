#!/usr/bin/env python3
"""SIGTERM cycles with streams open: how do requests end when vdbd stops?

A diagnostic, not part of CI (the race it looks for is timing-dependent):
each cycle starts vdbd on a fresh data directory, opens three Import
streams and a searcher (Python grpcio, whose channels to one address share
one HTTP/2 connection), sends SIGTERM after a random moment, keeps the
streams going for a random time (within or past the grace period), and
records how each stream ended and vdbd's exit code. It exits 1 if any
stream was cut by a GOAWAY with an error code, or vdbd exited non-zero.

    pip install grpcio grpcio-tools
    python -m grpc_tools.protoc -I proto --python_out=OUT --grpc_python_out=OUT vdb/v1/vdb.proto
    PYTHONPATH=OUT python tests/shutdown_cycles.py target/debug/vdbd --cycles 100

Measured with h2 0.4.20 (docs/server.md, "Shutdown"): about 1 cycle in
100 ends every stream on the connection with GOAWAY(PROTOCOL_ERROR) a few
milliseconds after the signal. With `--log debug` vdbd's log shows why:
the client's HEADERS for a new stream arrive right after the server's
second, final GOAWAY; h2 ignores them without recording the stream id, and
the WINDOW_UPDATE that follows for that stream fails h2's idle-stream check,
a connection error. The streams' acknowledged writes are stored; the
client sees UNAVAILABLE and retries.
"""

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from vdb.v1 import vdb_pb2 as pb, vdb_pb2_grpc as rpc


def cycle(vdbd, grace, rnd, log):
    data = tempfile.mkdtemp()
    with open(os.path.join(data, "vdbd.err"), "w+") as err:
        p = subprocess.Popen([vdbd, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(data, "d"),
                              "--log", log, "--shutdown-grace-secs", str(grace)],
                             stdout=subprocess.PIPE, stderr=err, text=True)
        addr = p.stdout.readline().strip().split()[-1]
        rpc.VdbStub(grpc.insecure_channel(addr)).CreateCollection(
            pb.CreateCollectionRequest(name="c", config=pb.CollectionConfig(dim=8)))
        stop = threading.Event()
        signalled = [float("inf")]
        ends = []

        def importer(k):
            stub = rpc.VdbStub(grpc.insecure_channel(addr))

            def messages():
                i = 0
                while not stop.is_set():
                    rows = [pb.Row(id=k * 10_000_000 + i * 100 + j, vector=[float(j)] * 8)
                            for j in range(100)]
                    yield pb.ImportRequest(collection="c" if i == 0 else "", rows=rows)
                    i += 1
                    time.sleep(0.0005)
            try:
                stub.Import(messages())
                ends.append(("import", "OK", ""))
            except grpc.RpcError as e:
                after = (time.monotonic() - signalled[0]) * 1000
                ends.append(("import", e.code().name, f"{e.details()} ({after:.1f} ms after SIGTERM)"))

        def searcher():
            stub = rpc.VdbStub(grpc.insecure_channel(addr))
            end = ("search", "OK", "")
            while not stop.is_set():
                try:
                    stub.Search(pb.SearchRequest(collection="c", queries=[pb.Vector(values=[0.5] * 8)], k=5))
                except grpc.RpcError as e:
                    end = ("search", e.code().name, e.details())
                    break
            ends.append(end)

        threads = [threading.Thread(target=importer, args=(k,)) for k in range(3)]
        threads.append(threading.Thread(target=searcher))
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.02, 0.3))
        signalled[0] = time.monotonic()
        p.send_signal(signal.SIGTERM)
        time.sleep(rnd.choice([0.05, 0.3, grace + 0.5]))
        stop.set()
        for t in threads:
            t.join(15)
        code = p.wait(60)
        err.seek(0)
        log_text = err.read()
    return ends, code, log_text, data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vdbd")
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--grace", type=int, default=1)
    ap.add_argument("--log", default="warn", help="vdbd's --log (debug shows h2's frames)")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    counts = collections.Counter()
    bad = []
    for n in range(a.cycles):
        ends, code, log_text, data = cycle(a.vdbd, a.grace, rnd, a.log)
        counts[("vdbd exit", code)] += 1
        for kind, status, detail in ends:
            counts[(kind, status)] += 1
            if "GOAWAY received; Error code: " in detail and "Error code: 0" not in detail:
                bad.append((n, kind, detail, data))
        if code != 0:
            bad.append((n, "vdbd", f"exit {code}: {log_text[-300:]}", data))
    for k, v in sorted(counts.items(), key=str):
        print(f"{k}: {v}")
    for b in bad:
        print("cycle %d: %s: %s (log in %s)" % b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
