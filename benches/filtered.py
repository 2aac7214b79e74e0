#!/usr/bin/env python3
"""Filtered search: vdb against pgvector's ivfflat with iterative index
scans, on the same data, filters and queries, side by side in one run.

    python3 benches/filtered.py --vdbd target/release/vdbd \
        --base B.fvecs --query Q.fvecs [--queries 1000] [--nlist 256] \
        [--nprobe N] [--k 10] [--pg-bin /usr/lib/postgresql/15/bin]

Rows get two generated fields (fixed seed): `album`, a keyword drawn from
1,000 values with Zipf-like frequencies (value i with weight 1/(i+1)^1.1),
and `price`, an integer uniform in [0, 10000). For each selectivity
(50 %, 10 %, 1 %, 0.1 %) there is one keyword filter (`album = v`, the
value whose frequency is within 30 % of it, or else `album in [...]`, the
most frequent values until they reach it) and one range filter
(`price < p`), plus the unfiltered search. The ground truth is the exact top-k of the rows the
filter holds for (numpy, float64).

vdb: vdbd with the collection's defaults (nlist 256 unless given; nprobe
as given, or else chosen by the collection's default recall target when it
is trained), loaded with Import and flushed (trained).
pgvector: PostgreSQL with the vector extension, an ivfflat index with the
same lists, `ivfflat.probes` = vdb's nprobe, `ivfflat.iterative_scan =
relaxed_order` and the default `ivfflat.max_probes` (every list), no index
on the filtered columns (so the planner uses the ivfflat scan). Both are
asked one query per request by one client over a local socket (gRPC over
TCP for vdb, the PostgreSQL protocol over a Unix socket for pgvector).

Needs numpy, grpcio, grpcio-tools and psycopg; PostgreSQL refuses to run
as root, so as root it runs under the `postgres` user (`runuser`).
Prints one JSON object per measurement and a table.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

SELECTIVITIES = [0.5, 0.1, 0.01, 0.001]


def read_vecs(path, dtype="<f4"):
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


def fields(n, seed):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 1001) ** 1.1
    weights /= weights.sum()
    album = rng.choice(1000, size=n, p=weights)
    price = rng.integers(0, 10000, size=n)
    return album, price


def filters(album, price):
    """[(name, selectivity wanted, text, mask, (column, op, value))]."""
    counts = np.bincount(album, minlength=1000) / len(album)
    out = [("none", 1.0, None, np.ones(len(album), bool), None)]
    for s in SELECTIVITIES:
        v = int(np.argmin(np.abs(counts - s)))
        if abs(counts[v] - s) <= 0.3 * s:
            out.append((f"album {s:g}", s, f"album = 'a{v}'", album == v, ("album", "=", f"a{v}")))
        else:
            # No single value is that frequent: the most frequent values
            # until they reach it.
            n = int(np.searchsorted(np.cumsum(counts), s)) + 1
            values = [f"a{i}" for i in range(n)]
            text = f"album in [{', '.join(repr(v) for v in values[:3])}, … {n} values]"
            out.append((f"album {s:g}", s, text, album < n, ("album", "in", values)))
        p = int(round(10000 * s))
        out.append((f"price {s:g}", s, f"price < {p}", price < p, ("price", "<", p)))
    return out


def ground_truth(base, queries, mask, k):
    idx = np.flatnonzero(mask)
    sub = base[idx].astype(np.float64)
    norms = (sub * sub).sum(1)
    truth = []
    for q in queries.astype(np.float64):
        d = norms - 2 * sub @ q
        top = np.argsort(d, kind="stable")[:k]
        truth.append(set(idx[top].tolist()))
    return truth


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- vdb ---------------------------------------------------------------------

def stubs(tmp):
    out = os.path.join(tmp, "stubs")
    os.makedirs(out)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", root, f"--python_out={out}",
                    f"--grpc_python_out={out}", "vdb/v1/vdb.proto"], check=True)
    sys.path.insert(0, out)
    import grpc
    from vdb.v1 import vdb_pb2 as pb, vdb_pb2_grpc as rpc
    return grpc, pb, rpc


def start_vdbd(vdbd, tmp):
    log = os.path.join(tmp, "vdbd.log")
    p = subprocess.Popen([vdbd, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, "vdb"),
                          "--log", "warn"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        for line in open(log).read().splitlines():
            if line.startswith("vdbd listening on "):
                return p, line.split()[-1]
        if p.poll() is not None:
            sys.exit(f"vdbd exited:\n{open(log).read()}")
        time.sleep(0.05)
    sys.exit("vdbd did not start")


def vdb_filter(pb, spec):
    if spec is None:
        return None
    col, op, value = spec
    if col == "album" and op == "in":
        return pb.Filter(condition=pb.Condition(field="album", op=pb.FILTER_OP_IN,
                                                values=[pb.FieldValue(keyword=v) for v in value]))
    if col == "album":
        return pb.Filter(condition=pb.Condition(field="album", op=pb.FILTER_OP_EQ,
                                                values=[pb.FieldValue(keyword=value)]))
    return pb.Filter(condition=pb.Condition(field="price", op=pb.FILTER_OP_LT,
                                            values=[pb.FieldValue(int=value)]))


def vdb_load(pb, stub, base, album, price, nlist, nprobe):
    """Loads and trains the collection; returns the seconds it took and
    the collection's description."""
    stub.CreateCollection(pb.CreateCollectionRequest(name="bench", config=pb.CollectionConfig(
        dim=base.shape[1], nlist=nlist, nprobe=nprobe, sync="none",
        fields=[pb.FieldSpec(name="album", type="keyword"), pb.FieldSpec(name="price", type="int")])))

    def batches():
        for start in range(0, len(base), 1000):
            rows = []
            for i in range(start, min(start + 1000, len(base))):
                r = pb.Row(id=i, vector=base[i].tolist())
                r.fields["album"].keyword = f"a{album[i]}"
                r.fields["price"].int = int(price[i])
                rows.append(r)
            yield pb.ImportRequest(collection="bench", rows=rows)

    t = time.monotonic()
    stub.Import(batches())
    stub.Flush(pb.MaintenanceRequest(collection="bench"))
    secs = time.monotonic() - t
    return secs, stub.DescribeCollection(pb.DescribeCollectionRequest(name="bench"))


def vdb_search(pb, stub, queries, k, spec):
    f = vdb_filter(pb, spec)
    out, rows = [], 0
    t = time.monotonic()
    for q in queries:
        req = pb.SearchRequest(collection="bench", queries=[pb.Vector(values=q.tolist())], k=k)
        if f is not None:
            req.filter.CopyFrom(f)
        hits = stub.Search(req).results[0].hits
        out.append([h.id for h in hits])
    secs = time.monotonic() - t
    return out, secs


# --- pgvector ----------------------------------------------------------------

def as_postgres(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, **kw)


def start_postgres(pg_bin, tmp):
    data = os.path.join(tmp, "pg")
    os.makedirs(data)
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    as_postgres([os.path.join(pg_bin, "initdb"), "-D", data, "-A", "trust", "-U", "bench"],
                stdout=subprocess.DEVNULL)
    port = free_port()
    args = [os.path.join(pg_bin, "postgres"), "-D", data, "-k", tmp, "-p", str(port),
            "-c", "listen_addresses=", "-c", "shared_buffers=2GB", "-c", "maintenance_work_mem=2GB",
            "-c", "max_parallel_workers_per_gather=0", "-c", "max_parallel_maintenance_workers=1",
            "-c", "fsync=off", "-c", "jit=off"]
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    p = subprocess.Popen(args, stdout=open(os.path.join(tmp, "pg.log"), "w"), stderr=subprocess.STDOUT)
    import psycopg
    for _ in range(600):
        try:
            return p, psycopg.connect(host=tmp, port=port, user="bench", dbname="postgres", autocommit=True)
        except psycopg.OperationalError:
            if p.poll() is not None:
                sys.exit(f"postgres exited:\n{open(os.path.join(tmp, 'pg.log')).read()}")
            time.sleep(0.1)
    sys.exit("postgres did not start")


def vec_text(v):
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def pg_load(conn, base, album, price, nlist):
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    version = cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    cur.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, embedding vector({base.shape[1]}), "
                "album text, price int)")
    t = time.monotonic()
    with cur.copy("COPY items (id, embedding, album, price) FROM STDIN") as copy:
        for i in range(len(base)):
            copy.write_row((i, vec_text(base[i]), f"a{album[i]}", int(price[i])))
    cur.execute(f"CREATE INDEX ON items USING ivfflat (embedding vector_l2_ops) WITH (lists = {nlist})")
    cur.execute("VACUUM ANALYZE items")
    return version, time.monotonic() - t


def pg_search(conn, queries, k, nprobe, spec):
    cur = conn.cursor()
    cur.execute(f"SET ivfflat.probes = {nprobe}")
    cur.execute("SET ivfflat.iterative_scan = relaxed_order")
    where, params = "", []
    if spec is not None:
        col, op, value = spec
        if op == "in":
            where = f"WHERE {col} = ANY(%s)"
        else:
            where = f"WHERE {col} {op} %s"
        params = [value]
    sql = f"SELECT id FROM items {where} ORDER BY embedding <-> %s::vector LIMIT {k}"
    plan = cur.execute("EXPLAIN " + sql, params + [vec_text(queries[0])]).fetchall()
    out = []
    t = time.monotonic()
    for q in queries:
        out.append([r[0] for r in cur.execute(sql, params + [vec_text(q)], prepare=True).fetchall()])
    secs = time.monotonic() - t
    return out, secs, " / ".join(r[0].strip() for r in plan[:2])


# --- the run -------------------------------------------------------------------

def score(got, truth, k):
    recall = np.mean([len(set(g) & t) / max(1, min(k, len(t))) for g, t in zip(got, truth)])
    full = np.mean([len(g) == min(k, len(t)) for g, t in zip(got, truth)])
    return float(recall), float(full)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vdbd", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--nprobe", type=int, default=None,
                    help="fixed nprobe (default: the one vdb's recall target chooses)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pg-bin", default="/usr/lib/postgresql/15/bin")
    ap.add_argument("--skip-pg", action="store_true")
    a = ap.parse_args()

    base = read_vecs(a.base)
    queries = read_vecs(a.query)[: a.queries]
    album, price = fields(len(base), a.seed)
    fs = filters(album, price)
    tmp = tempfile.mkdtemp(prefix="vdb-filtered-")
    procs = []
    try:
        truths = {name: ground_truth(base, queries, mask, a.k) for name, _, _, mask, _ in fs}
        grpc, pb, rpc = stubs(tmp)
        p, addr = start_vdbd(a.vdbd, tmp)
        procs.append(p)
        stub = rpc.VdbStub(grpc.insecure_channel(addr, options=[
            ("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]))
        load, info = vdb_load(pb, stub, base, album, price, a.nlist, a.nprobe)
        nprobe = info.config.nprobe
        print(json.dumps({"system": "vdb", "load_s": round(load, 1), "nprobe": nprobe,
                          "target_recall": info.config.target_recall,
                          "tuned_recall": info.stats.tuned_recall}), flush=True)
        pg = None
        if not a.skip_pg:
            pgp, conn = start_postgres(a.pg_bin, tmp)
            procs.append(pgp)
            version, pg_load_s = pg_load(conn, base, album, price, a.nlist)
            print(json.dumps({"system": f"pgvector {version}", "load_s": round(pg_load_s, 1)}), flush=True)
            pg = conn
        rows = []
        for name, want, text, mask, spec in fs:
            truth = truths[name]
            sel = float(mask.mean())
            got, secs = vdb_search(pb, stub, queries, a.k, spec)
            r, full = score(got, truth, a.k)
            row = {"filter": text or "(none)", "selectivity": sel, "vdb_qps": len(queries) / secs,
                   "vdb_recall": r, "vdb_full": full}
            if pg is not None:
                got, secs, plan = pg_search(pg, queries, a.k, nprobe, spec)
                r, full = score(got, truth, a.k)
                row.update({"pg_qps": len(queries) / secs, "pg_recall": r, "pg_full": full, "pg_plan": plan})
            print(json.dumps(row), flush=True)
            rows.append(row)
        print(f"\n{'filter':<18} {'sel':>7} | {'vdb QPS':>8} {'recall':>7} {'k rows':>7} | "
              f"{'pg QPS':>8} {'recall':>7} {'k rows':>7} | vdb/pg")
        for r in rows:
            line = (f"{r['filter']:<18} {r['selectivity']:>7.4f} | {r['vdb_qps']:>8.1f} "
                    f"{r['vdb_recall']:>7.3f} {r['vdb_full']:>7.3f} |")
            if "pg_qps" in r:
                line += (f" {r['pg_qps']:>8.1f} {r['pg_recall']:>7.3f} {r['pg_full']:>7.3f} | "
                         f"{r['vdb_qps'] / r['pg_qps']:.2f}")
            print(line)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
