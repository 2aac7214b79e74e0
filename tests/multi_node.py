#!/usr/bin/env python3
"""One writer, two read replicas, and the writer's machine lost — each node
its own "machine" (a network namespace), the bucket on real moto.

    multi_node.py --vdbd target/debug/vdbd --vdbctl target/debug/vdbctl \
        --moto-server PATH/moto_server --base data/digits/base.fvecs \
        --query data/digits/query.fvecs [--netns require|auto|off] [--json]

What docs/server.md tells an operator to run, and what "done" means for
it: writer W1 holds a sync=object collection loaded from --base (flushed
and trained); replicas R1 and R2 follow it from empty data directories.
While two clients import batches into W1, W1's machine is lost: its vdbd
is killed with SIGKILL, its namespace (its network) deleted and its data
directory removed. W2 starts on a new machine with an empty directory
and the same bucket. Then:

- every batch W1 acknowledged is on W2 (and nothing but those, the ones
  in flight and the base);
- W2 accepts writes: the *failover time* is from the kill to W2's first
  acknowledged write (its start, the recovery of the collection from the
  manifest and the shipped log, and the write);
- both replicas serve W2's state (its write included), name W2 as the
  writer, and answer a search exactly as W2 does: the *convergence time*
  is from W2's first acknowledged write until both do.

With --netns (root, `ip`), each vdbd runs in a namespace of its own joined
to a bridge, and the bucket and the clients are on the bridge's address;
`auto` falls back to loopback when namespaces cannot be made, `require`
fails then. Prints the timings (one JSON object with --json). Only the
standard library; every process, namespace and link is removed on the way
out.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

DEADLINE_SECS = 120
BATCH = 100


def wait_for(what, ok, deadline=DEADLINE_SECS):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ok():
            return
        time.sleep(0.05)
    sys.exit(f"error: {what} did not happen within {deadline} s")


def read_fvecs(path, limit):
    out = []
    with open(path, "rb") as f:
        while len(out) < limit:
            head = f.read(4)
            if len(head) < 4:
                break
            (d,) = struct.unpack("<i", head)
            out.append(list(struct.unpack(f"<{d}f", f.read(4 * d))))
    return out


def run(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class Network:
    """Machines: network namespaces on a bridge, or plain loopback."""

    def __init__(self, mode):
        self.tag = f"{os.getpid() % 10000}"
        self.bridge = f"vdbbr{self.tag}"
        self.names = []
        self.on = False
        if mode == "off":
            self.host = "127.0.0.1"
            return
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", "10.88.0.1/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            self.on = True
            self.host = "10.88.0.1"
        except (OSError, subprocess.CalledProcessError) as e:
            if mode == "require":
                err = getattr(e, "stderr", "") or e
                sys.exit(f"error: cannot make network namespaces (run as root with `ip`): {err}")
            print(f"network namespaces unavailable ({e}); every node on loopback")
            self.host = "127.0.0.1"

    def machine(self, index):
        """A new machine: (namespace or None, its address)."""
        if not self.on:
            return None, "127.0.0.1"
        ns = f"vdb{self.tag}n{index}"
        host_end, ns_end = f"vh{self.tag}n{index}", f"vn{self.tag}n{index}"
        ip = f"10.88.0.{10 + index}"
        run("ip", "netns", "add", ns)
        self.names.append(ns)
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        run("ip", "link", "set", ns_end, "netns", ns)
        run("ip", "link", "set", host_end, "master", self.bridge, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", ns_end)
        run("ip", "netns", "exec", ns, "ip", "link", "set", ns_end, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        return ns, ip

    def lose(self, ns):
        """The machine's network goes (its veth pair with its namespace)."""
        if ns is not None:
            run("ip", "netns", "del", ns, check=False)
            self.names.remove(ns)

    def close(self):
        for ns in list(self.names):
            run("ip", "netns", "del", ns, check=False)
        if self.on:
            run("ip", "link", "del", self.bridge, check=False)


class Node:
    def __init__(self, cluster, name, *extra):
        self.name = name
        self.ns, self.ip = cluster.net.machine(len(cluster.nodes))
        self.dir = os.path.join(cluster.tmp, name)
        self.log = os.path.join(cluster.tmp, f"{name}.log")
        cmd = [cluster.vdbd, "--listen", f"{self.ip}:0", "--data-dir", self.dir,
               "--object-store", "s3://vdb/prod", "--log", "warn", *extra]
        if self.ns is not None:
            cmd = ["ip", "netns", "exec", self.ns, *cmd]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env=cluster.env)
        cluster.nodes.append(self)
        self.addr = None
        wait_for(f"{name} listening", self.listening)
        self.started = time.monotonic() - self.t0

    def listening(self):
        for line in open(self.log).read().splitlines():
            if line.startswith("vdbd listening on "):
                self.addr = "http://" + line.split()[-1]
                return True
        if self.proc.poll() is not None:
            sys.exit(f"error: {self.name} exited {self.proc.returncode}:\n{open(self.log).read()}")
        return False


class Cluster:
    def __init__(self, args, tmp, net):
        self.vdbd, self.vdbctl, self.tmp, self.net = args.vdbd, args.vdbctl, tmp, net
        self.nodes = []
        self.env = None

    def ctl(self, node, *args, ok=True):
        r = subprocess.run([self.vdbctl, "--server", node.addr, *args], capture_output=True,
                           text=True, timeout=DEADLINE_SECS)
        if ok and r.returncode != 0:
            sys.exit(f"error: vdbctl {' '.join(args)} on {node.name} exited {r.returncode}: "
                     f"{r.stderr}")
        return r

    def json(self, node, *args):
        return json.loads(self.ctl(node, "--json", *args).stdout)

    def kill_all(self):
        for n in self.nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()


def main():
    ap = argparse.ArgumentParser()
    for a in ("--vdbd", "--vdbctl", "--moto-server", "--base", "--query"):
        ap.add_argument(a, required=True)
    ap.add_argument("--netns", choices=("require", "auto", "off"), default="auto")
    ap.add_argument("--rows", type=int, default=10**9, help="base rows to load (default all)")
    ap.add_argument("--nlist", type=int, default=16)
    ap.add_argument("--follow-ms", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.vdbd, args.vdbctl = os.path.abspath(args.vdbd), os.path.abspath(args.vdbctl)
    tmp = tempfile.mkdtemp(prefix="vdb-multi-node-")
    net = Network(args.netns)
    cluster = Cluster(args, tmp, net)
    moto = None
    try:
        with socket.socket() as s:
            s.bind((net.host, 0))
            port = s.getsockname()[1]
        moto = subprocess.Popen([args.moto_server, "-H", net.host, "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://{net.host}:{port}"

        def moto_up():
            try:
                urllib.request.urlopen(endpoint + "/", timeout=2)
                return True
            except OSError:
                return False
        wait_for("moto", moto_up)
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/vdb", method="PUT"))
        cluster.env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
                           AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                           AWS_ALLOW_HTTP="true")

        base = read_fvecs(args.base, args.rows)
        dim = len(base[0])
        # The writer, loaded and trained.
        w1 = Node(cluster, "w1")
        cluster.ctl(w1, "create-collection", "docs", "--dim", str(dim), "--nlist",
                    str(args.nlist), "--sync", "object")
        load = os.path.join(tmp, "base.fvecs")
        with open(args.base, "rb") as src, open(load, "wb") as dst:
            dst.write(src.read(len(base) * (4 + 4 * dim)))
        cluster.ctl(w1, "import", "docs", load)
        cluster.ctl(w1, "flush", "docs")
        n = cluster.json(w1, "describe", "docs")["rows"]
        if n != len(base):
            sys.exit(f"error: w1 holds {n} rows, {len(base)} were imported")

        # Two replicas, each on its machine, from empty directories.
        follow = ("--replica", "--follow-interval-ms", str(args.follow_ms))
        replicas = [Node(cluster, "r1", *follow), Node(cluster, "r2", *follow)]
        for r in replicas:
            wait_for(f"{r.name} serving the base", lambda r=r: cluster.ctl(
                r, "--json", "describe", "docs", ok=False).returncode == 0
                and cluster.json(r, "describe", "docs")["rows"] == n)

        # Two clients import into W1 until its machine is lost.
        acked, in_flight, lock = [], [], threading.Lock()
        lost = threading.Event()

        def importer(client):
            for k in range(100_000):
                if lost.is_set():
                    return
                first = n + (client * 100_000 + k) * BATCH
                path = os.path.join(tmp, f"load-{client}-{k}.jsonl")
                with open(path, "w") as f:
                    for i in range(first, first + BATCH):
                        f.write(json.dumps({"id": i, "vector": base[i % n]}) + "\n")
                with lock:
                    in_flight.append(first)
                r = cluster.ctl(w1, "import", "docs", path, ok=False)
                with lock:
                    in_flight.remove(first)
                    if r.returncode == 0:
                        acked.append(first)
                if r.returncode != 0:
                    return
        clients = [threading.Thread(target=importer, args=(c,)) for c in range(2)]
        for t in clients:
            t.start()
        wait_for("20 acknowledged batches", lambda: len(acked) >= 20)

        # W1's machine is lost: process, network and disk.
        with lock:
            maybe = list(in_flight)
            w1.proc.kill()
            t_kill = time.monotonic()
            lost.set()
        w1.proc.wait()
        net.lose(w1.ns)
        shutil.rmtree(w1.dir)
        for t in clients:
            t.join()

        # W2 takes over from an empty directory and accepts a write.
        w2 = Node(cluster, "w2")
        t_listening = time.monotonic()
        marker = 10**12
        vec = ",".join(str(x) for x in base[0])
        while cluster.ctl(w2, "insert", "docs", "--id", str(marker), "--vector", vec,
                          ok=False).returncode != 0:
            if time.monotonic() - t_kill > DEADLINE_SECS:
                sys.exit("error: w2 accepted no write")
            time.sleep(0.05)
        t_write = time.monotonic()

        got = cluster.json(w2, "describe", "docs")["rows"]
        low, high = n + len(acked) * BATCH + 1, n + (len(acked) + len(maybe)) * BATCH + 1
        if not low <= got <= high:
            sys.exit(f"error: w2 holds {got} rows; {n} base rows, {len(acked)} batches of "
                     f"{BATCH} acknowledged, {len(maybe)} in flight, one marker")
        for first in acked:
            ids = ",".join(str(i) for i in range(first, first + BATCH))
            missing = cluster.json(w2, "get", "docs", "--ids", ids)["missing"]
            if missing:
                sys.exit(f"error: acknowledged rows lost with w1's machine: {missing[:5]}")

        # Both replicas follow W2.
        writer = cluster.json(w2, "describe", "docs")["writer"]
        search = ("search", "docs", "--file", args.query, "--row", "3", "--k", "10",
                  "--nprobe", "4")

        def follows(r):
            info = cluster.json(r, "describe", "docs")
            return info["writer"] == writer and info["rows"] == got and cluster.json(
                r, "get", "docs", "--ids", str(marker))["rows"]
        for r in replicas:
            wait_for(f"{r.name} following w2", lambda r=r: follows(r))
        t_converged = time.monotonic()
        want = cluster.json(w2, *search)["hits"]
        for r in replicas:
            answer = cluster.json(r, *search)["hits"]
            if answer != want:
                sys.exit(f"error: {r.name} answers differently from w2:\n{answer}\n{want}")
            refused = cluster.ctl(r, "insert", "docs", "--id", "1", "--vector", vec, ok=False)
            if refused.returncode == 0 or "read replica" not in refused.stderr:
                sys.exit(f"error: {r.name} took a write: {refused.stderr}")

        result = {
            "machines": "network namespaces" if net.on else "loopback",
            "base_rows": n,
            "dim": dim,
            "acknowledged_batches": len(acked),
            "in_flight_batches": len(maybe),
            "rows_on_w2": got,
            "w2_listening_secs": round(t_listening - t_kill, 3),
            "failover_secs": round(t_write - t_kill, 3),
            "replicas_converged_secs": round(t_converged - t_write, 3),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{n} rows of dim {dim}; w1 lost after {len(acked)} acknowledged batches "
                  f"({len(maybe)} in flight), on {result['machines']}")
            print(f"w2 holds every acknowledged row ({got} rows); listening "
                  f"{result['w2_listening_secs']} s and accepting writes "
                  f"{result['failover_secs']} s after the kill")
            print(f"both replicas serve w2's state and answer as it does "
                  f"{result['replicas_converged_secs']} s later; they refuse writes")
        for node in cluster.nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
                node.proc.wait(timeout=DEADLINE_SECS)
    finally:
        cluster.kill_all()
        if moto is not None:
            moto.kill()
            moto.wait()
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
