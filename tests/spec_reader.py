#!/usr/bin/env python3
"""A reader of vdb's files written from docs/format.md alone, and a check
that it reads what the server serves.

    spec_reader.py populate --server HOST:PORT
        writes three collections (l2, ip with RaBitQ codes, cosine) through
        the server: rows with no payload, an empty payload and bytes;
        flushed segments and delete files; log records left unflushed
        (upserts and deletes); then a snapshot of one, restored as a
        fourth collection

    spec_reader.py check --server HOST:PORT --data-dir DIR
        reads every collection under DIR/collections from its files (the
        manifest, centroid, segment and delete files, the log) and
        compares every visible row, and the row count, with the server's
        Get and DescribeCollection; and every snapshot under DIR/snapshots
        (its descriptor, files and manifest) with its collection

The vdb.v1 Python stubs must be importable (grpc_tools.protoc output on
PYTHONPATH). Nothing here imports vdb code: the format is as the page
specifies it.
"""

import argparse
import math
import os
import struct
import sys
import zlib

MiB = 1 << 20


class Corrupt(Exception):
    pass


def crc32(b):
    return zlib.crc32(b) & 0xFFFFFFFF


# --- the common frame -------------------------------------------------------

KINDS = {1: b"VDBCENT\0", 2: b"VDBSEGM\0", 3: b"VDBDELS\0"}
KNOWN_FLAGS = {1: 0, 2: 0b111111, 3: 0}


def read_frame(path, want_kind):
    """Header, regions {kind: bytes} (CRC-checked), for a file of want_kind."""
    data = open(path, "rb").read()
    if len(data) < 128:
        raise Corrupt(f"{path}: shorter than a header")
    (magic, major, minor, kind, metric, flags, dim, nlist, generation, rows, segment_id,
     file_len, region_count, table_crc) = struct.unpack_from("<8sHHBBHIIQQQQII", data, 0)
    if magic != KINDS[want_kind]:
        raise Corrupt(f"{path}: magic {magic!r}")
    (header_crc,) = struct.unpack_from("<I", data, 124)
    if crc32(data[:124]) != header_crc:
        raise Corrupt(f"{path}: header CRC")
    if major != 1:
        raise Corrupt(f"{path}: major version {major}")
    if kind != want_kind:
        raise Corrupt(f"{path}: kind {kind}")
    if flags & ~KNOWN_FLAGS[kind]:
        raise Corrupt(f"{path}: unknown flags {flags:#x}")
    if any(data[64:124]):
        raise Corrupt(f"{path}: reserved header bytes")
    if file_len != len(data):
        raise Corrupt(f"{path}: file_len {file_len} but {len(data)} bytes")
    table = data[128:128 + 32 * region_count]
    if crc32(table) != table_crc:
        raise Corrupt(f"{path}: region table CRC")
    footer_at = file_len - 16
    if footer_at % 64 or data[footer_at:footer_at + 8] != magic or \
            struct.unpack_from("<Q", data, footer_at + 8)[0] != file_len:
        raise Corrupt(f"{path}: footer")
    regions = []
    end = 128 + 32 * region_count
    for i in range(region_count):
        rkind, res0, offset, length, rcrc, res1 = struct.unpack_from("<IIQQII", table, 32 * i)
        if res0 or res1 or offset % 64 or offset < end or offset + length > footer_at:
            raise Corrupt(f"{path}: region {i} placement")
        body = data[offset:offset + length]
        if crc32(body) != rcrc:
            raise Corrupt(f"{path}: region {rkind} CRC")
        if any(data[end:offset]):
            raise Corrupt(f"{path}: padding before region {rkind}")
        end = offset + length
        regions.append((rkind, body))
    if any(data[end:footer_at]):
        raise Corrupt(f"{path}: padding before the footer")
    header = dict(minor=minor, metric=metric, flags=flags, dim=dim, nlist=nlist,
                  generation=generation, rows=rows, segment_id=segment_id)
    return header, regions


def expect_regions(path, regions, kinds):
    if [k for k, _ in regions] != kinds:
        raise Corrupt(f"{path}: regions {[k for k, _ in regions]}, expected {kinds}")
    return [b for _, b in regions]


def read_centroids(path):
    h, regions = read_frame(path, 1)
    (cen,) = expect_regions(path, regions, [1])
    if len(cen) != 4 * h["nlist"] * h["dim"]:
        raise Corrupt(f"{path}: centroids length")
    d = h["dim"]
    h["values"] = [struct.unpack_from(f"<{d}f", cen, 4 * d * i) for i in range(h["nlist"])]
    return h


FIELD_TYPES = {1: "keyword", 2: "int", 3: "float", 4: "bool", 5: "keywords"}


def read_columns(body, rows, path):
    """The field columns region: [{name: value}] per row (a row lacking a
    field has no key for it); keywords values are sorted tuples."""
    out = [dict() for _ in range(rows)]
    at = 0

    def take(n):
        nonlocal at
        if at + n > len(body):
            raise Corrupt(f"{path}: field columns cut short")
        b = body[at:at + n]
        at += n
        return b

    def u32():
        return struct.unpack("<I", take(4))[0]

    def bits():
        b = take((rows + 7) // 8)
        return [b[r // 8] >> (r % 8) & 1 for r in range(rows)]

    def dictionary():
        words = [take(u32()).decode("utf-8") for _ in range(u32())]
        if any(a >= b for a, b in zip(words, words[1:])):
            raise Corrupt(f"{path}: dictionary not ascending")
        return words

    for _ in range(u32()):
        name = take(take(1)[0]).decode("ascii")
        ty = FIELD_TYPES.get(take(1)[0])
        if ty in ("int", "float"):
            values = struct.unpack(f"<{rows}{'q' if ty == 'int' else 'd'}", take(8 * rows))
            for r, present in enumerate(bits()):
                if present:
                    out[r][name] = values[r]
        elif ty == "bool":
            for r, b in enumerate(take(rows)):
                if b > 2:
                    raise Corrupt(f"{path}: bool {b}")
                if b < 2:
                    out[r][name] = bool(b)
        elif ty == "keyword":
            words = dictionary()
            for r, code in enumerate(struct.unpack(f"<{rows}I", take(4 * rows))):
                if code != 0xFFFFFFFF:
                    out[r][name] = words[code]
        elif ty == "keywords":
            words = dictionary()
            starts = struct.unpack(f"<{rows + 1}I", take(4 * (rows + 1)))
            codes = struct.unpack(f"<{u32()}I", take(4 * starts[-1]))
            for r, absent in enumerate(bits()):
                if not absent:
                    out[r][name] = tuple(words[c] for c in codes[starts[r]:starts[r + 1]])
        else:
            raise Corrupt(f"{path}: column {name} has an unknown type")
    if at != len(body):
        raise Corrupt(f"{path}: bytes after the last column")
    return out


def read_segment(path, dim):
    """[(id, vector tuple, payload or None, fields dict)] in row order."""
    h, regions = read_frame(path, 2)
    flags, rows, nlist = h["flags"], h["rows"], h["nlist"]
    kinds = [3, 2, 4] + ([5, 6] if flags & 1 else []) + ([7] if flags & 2 else []) + \
        ([8] if flags & 4 else []) + ([9] if flags & 8 else [])
    if flags & 2 and not flags & 1:
        raise Corrupt(f"{path}: presence without payloads")
    if flags & 16 and not flags & 8:
        raise Corrupt(f"{path}: extended codes without codes")
    if flags & 32 and not flags & 8:
        raise Corrupt(f"{path}: blocked codes without codes")
    parts = expect_regions(path, regions, kinds)
    vectors, table, ids = parts[0], parts[1], parts[2]
    if h["dim"] != dim or len(table) != 32 * nlist or len(ids) != 8 * rows:
        raise Corrupt(f"{path}: region lengths")
    out = []
    next_row = 0
    prev_end = 0
    row_vectors = []
    h["row_lists"] = []
    for l in range(nlist):
        row_start, row_count, vec_offset, reserved = struct.unpack_from("<QQQQ", table, 32 * l)
        if reserved or row_start != next_row or vec_offset % 64 or vec_offset < prev_end:
            raise Corrupt(f"{path}: list {l}")
        end = vec_offset + 4 * dim * row_count
        if end > len(vectors) or any(vectors[prev_end:vec_offset]):
            raise Corrupt(f"{path}: list {l} vectors")
        for i in range(row_count):
            at = vec_offset + 4 * dim * i
            row_vectors.append(struct.unpack_from(f"<{dim}f", vectors, at))
            h["row_lists"].append(l)
        next_row += row_count
        prev_end = end
    if next_row != rows or any(vectors[prev_end:]):
        raise Corrupt(f"{path}: list table rows")
    id_list = struct.unpack(f"<{rows}Q", ids)
    payloads = [None] * rows
    if flags & 1:
        offsets = struct.unpack(f"<{rows + 1}Q", parts[3])
        data = parts[4]
        if offsets[0] != 0 or offsets[-1] != len(data) or any(a > b for a, b in zip(offsets, offsets[1:])):
            raise Corrupt(f"{path}: payload offsets")
        presence = parts[5] if flags & 2 else None
        if presence is not None and len(presence) != (rows + 7) // 8:
            raise Corrupt(f"{path}: presence length")
        for r in range(rows):
            b = data[offsets[r]:offsets[r + 1]]
            if presence is None:
                payloads[r] = b if b else None  # 1.0: empty means none
            elif presence[r // 8] >> (r % 8) & 1:
                payloads[r] = b
            elif b:
                raise Corrupt(f"{path}: row {r} has no payload but bytes")
    by_kind = dict(zip(kinds, parts))
    fields = read_columns(by_kind[8], rows, path) if flags & 4 else [dict() for _ in range(rows)]
    h["codes"] = read_codes(by_kind[9], rows, dim, path, flags & 16, flags & 32,
                            [c for _, c in list_counts(table, nlist)]) if flags & 8 else None
    for r in range(rows):
        out.append((id_list[r], row_vectors[r], payloads[r], fields[r]))
    return h, out


def list_counts(table, nlist):
    """(row_start, row_count) of each list of a list table."""
    return [struct.unpack_from("<QQ", table, 32 * l) for l in range(nlist)]


def read_codes(body, rows, dim, path, extended, blocked, counts):
    """The codes region (format 1.3; with `extended`, 1.4; with `blocked`,
    1.5, whose codes are in blocks of 32 rows per list, `counts` the lists'
    row counts): (seed, codes, factors, extended codes and factors or
    None), checked against its shape."""
    if len(body) < 64:
        raise Corrupt(f"{path}: codes header")
    seed, words = struct.unpack_from("<QI", body, 0)
    (blocks,) = struct.unpack_from("<Q", body, 16)
    if any(body[12:16]) or any(body[24:64]) or words != (dim + 63) // 64:
        raise Corrupt(f"{path}: codes header")
    if blocks != (sum((c + 31) // 32 for c in counts) if blocked else 0):
        raise Corrupt(f"{path}: codes header block count")
    code_bytes = 256 * words * blocks if blocked else 8 * words * rows
    factors_at = 64 if blocked else 64 + code_bytes
    x = factors_at + 16 * rows
    padded = (dim * rows + 7) // 8 * 8
    rest = padded + 8 * rows if extended else 0
    if len(body) != x + rest + (code_bytes if blocked else 0):
        raise Corrupt(f"{path}: codes length")
    ext = None
    if extended:
        if any(body[x + dim * rows:x + padded]):
            raise Corrupt(f"{path}: extended codes padding")
        ext = [(body[x + dim * r:x + dim * (r + 1)], struct.unpack_from("<2f", body, x + padded + 8 * r))
               for r in range(rows)]
    if blocked:
        codes = []
        at = x + rest
        for count in counts:
            for k in range((count + 31) // 32):
                block = body[at:at + 256 * words]
                for i in range(32):
                    code = bytes(block[64 * (b // 2) + 32 * (i // 16) + 16 * (b % 2) + i % 16]
                                 for b in range(8 * words))
                    if 32 * k + i < count:
                        codes.append(struct.unpack("<%dQ" % words, code))
                    elif any(code):
                        raise Corrupt(f"{path}: a block's padding row is not zero")
                at += 256 * words
    else:
        codes = [struct.unpack_from(f"<{words}Q", body, 64 + 8 * words * r) for r in range(rows)]
    factors = [struct.unpack_from("<4f", body, factors_at + 16 * r) for r in range(rows)]
    for c, f in zip(codes, factors):
        ones = sum(bin(w).count("1") for w in c)
        if f[3] != ones:
            raise Corrupt(f"{path}: a code's count of set bits")
    return seed, codes, factors, ext


def splitmix64(seed):
    mask = (1 << 64) - 1
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def rotation(dim, seed):
    """The codes' rotation of `seed` as docs/format.md defines it, in f32
    (each f32 operation computed in f64 and rounded once: exact, since a
    double holds more than twice a float's precision)."""
    gen = splitmix64(seed)
    signs = []
    for i in range(4 * dim):
        if i % 64 == 0:
            bits = next(gen)
        signs.append(-1.0 if bits >> (i % 64) & 1 else 1.0)
    p = 1 << (dim.bit_length() - 1)
    scale = f32(1.0 / f32(math.sqrt(p)))

    def rotate(x):
        out = [f32(v) for v in x]
        for rnd in range(4):
            out = [v * s for v, s in zip(out, signs[rnd * dim:(rnd + 1) * dim])]
            start = 0 if rnd % 2 == 0 else dim - p
            w = out[start:start + p]
            span = 1
            while span < p:
                for b in range(0, p, 2 * span):
                    for i in range(b, b + span):
                        x, y = w[i], w[i + span]
                        w[i], w[i + span] = f32(x + y), f32(x - y)
                span *= 2
            out[start:start + p] = [f32(v * scale) for v in w]
        return out
    return rotate


def check_codes(path, h, rows, centroids, metric):
    """Recomputes every row's code and factors from its vector and its
    list's centroid with the format's arithmetic; compares bit for bit."""
    seed, codes, factors, ext = h["codes"]
    dim = h["dim"]
    rotate = rotation(dim, seed)
    rotated = [rotate(c) for c in centroids]
    for r, ((_, vec, _, _), code, got) in enumerate(zip(rows, codes, factors)):
        c = rotated[h["row_lists"][r]]
        v = rotate(vec)
        u = [a - b for a, b in zip(v, c)]
        r2 = sum(x * x for x in u)
        abs_sum = sum(abs(x) for x in u)
        u_dot_c = sum(x * y for x, y in zip(u, c))
        words = [0] * len(code)
        for j, x in enumerate(u):
            if x > 0:
                words[j // 64] |= 1 << (j % 64)
        ones = sum(bin(w).count("1") for w in words)
        add = r2 if metric == "l2" else -u_dot_c
        rr = math.sqrt(r2)
        if rr == 0:
            want = (add, 0.0, 0.0, ones)
        else:
            ip = min(max(abs_sum / (rr * math.sqrt(dim)), 2.2250738585072014e-308), 1.0)
            scale = (2.0 if metric == "l2" else 1.0) * rr / ip
            want = (add, scale, scale * math.sqrt(max(1.0 - ip * ip, 0.0)), ones)
        if tuple(words) != tuple(code) or tuple(f32(x) for x in want) != tuple(got):
            raise Corrupt(f"{path}: row {r}: code {code} {got}, the format gives {words} {want}")
        if ext is not None:
            EXTENDED_CHECKED[0] += 1
            want_bytes, want_f = extended_code(u, metric)
            got_bytes, got_f = ext[r]
            if want_bytes != bytes(got_bytes) or tuple(f32(x) for x in want_f) != tuple(got_f):
                raise Corrupt(f"{path}: row {r}: extended code {got_f}, the format gives {want_f}")
    return len(rows)


def extended_code(u, metric):
    """A row's extended code and factors from its rotated residual `u`,
    as docs/format.md gives them (in f64, sums in index order)."""
    r2, m = 0.0, 0.0
    for x in u:
        r2 += x * x
        m = max(m, abs(x))
    if m == 0:
        return bytes(len(u)), (0.0, 0.0)
    per_unit = 128.0 / m
    out, g_dot_u, g_sq = [], 0.0, 0.0
    for x in u:
        t = x * per_unit + 127.5
        # Rounded half away from zero (Rust's `f64::round`), exactly:
        # |t| − floor(|t|) is exact.
        whole = math.floor(abs(t))
        rounded = whole + (1.0 if abs(t) - whole >= 0.5 else 0.0)
        level = min(max(math.copysign(rounded, t), 0.0), 255.0)
        out.append(int(level))
        g = level - 127.5
        g_dot_u += g * x
        g_sq += g * g
    r, g_norm = math.sqrt(r2), math.sqrt(g_sq)
    ip = min(max(g_dot_u / (g_norm * r), 2.2250738585072014e-308), 1.0)
    k = 2.0 if metric == "l2" else 1.0
    return bytes(out), (k * r / (ip * g_norm), k * r * math.sqrt(max(1.0 - ip * ip, 0.0)) / ip)


def read_deletes(path):
    h, regions = read_frame(path, 3)
    (ids,) = expect_regions(path, regions, [4])
    if h["nlist"] != 0 or h["dim"] != 1 or len(ids) != 8 * h["rows"]:
        raise Corrupt(f"{path}: delete header")
    return h["generation"], struct.unpack(f"<{h['rows']}Q", ids)


# --- the manifest -----------------------------------------------------------

REQUIRED = ["dim", "metric", "nlist", "nprobe", "sync", "flush_rows", "min_rows_per_list",
            "retrain_growth", "retrain_error_drift", "retrain_imbalance", "retrain_min_new_rows",
            "generation", "centroids", "flushed_lsn", "next_seq", "trained_rows", "trained_error",
            "trained_imbalance"]
OPTIONAL = {"compact_max_segments": "8", "compact_max_hidden": "0.2", "compact_fanout": "4",
            "compact_max_segment_fraction": "0.15",
            "trained_at": "0", "compacted_at": "0", "writer": "0", "uid": "0",
            "target_recall": None, "tuned_recall": "0", "trained_generation": None,
            "rebalances": "0", "rebalanced_at": "0", "index_type": "ivf_flat"}


def read_manifest(path):
    return parse_manifest(open(path, "rb").read(), path)


def checked_body(data, path):
    """The bytes before the last line, `crc` and 8 hex digits, checked
    against it (manifests and snapshot descriptors)."""
    if not data.endswith(b"\n"):
        raise Corrupt(f"{path}: no final newline")
    at = data.rstrip(b"\n").rfind(b"\n") + 1
    body, crc_line = data[:at], data[at:].decode()
    if not crc_line.startswith("crc ") or len(crc_line) != len("crc ") + 9:
        raise Corrupt(f"{path}: crc line {crc_line!r}")
    if int(crc_line[4:12], 16) != crc32(body):
        raise Corrupt(f"{path}: CRC")
    return body


def parse_manifest(data, path):
    body = checked_body(data, path).decode("utf-8")
    lines = body.split("\n")
    if lines[0] != "vdb-manifest 1" or lines[-1] != "":
        raise Corrupt(f"{path}: first line or line ends")
    m = {"segment": [], "deletes": [], "field": []}
    for line in lines[1:-1]:
        key, value = line.split(" ", 1)
        if key == "field":
            name, ty = value.split(" ")
            if ty not in FIELD_TYPES.values():
                raise Corrupt(f"{path}: field type {ty!r}")
            m[key].append((name, ty))
        elif key in ("segment", "deletes"):
            seq, name = value.split(" ", 1)
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise Corrupt(f"{path}: file name {name!r}")
            m[key].append((int(seq), name))
        elif key in m:
            raise Corrupt(f"{path}: {key} twice")
        elif key in REQUIRED or key in OPTIONAL:
            m[key] = value
        else:
            raise Corrupt(f"{path}: unknown key {key!r}")
    for key in REQUIRED:
        if key not in m:
            raise Corrupt(f"{path}: {key} missing")
    for key, default in OPTIONAL.items():
        m.setdefault(key, default)
    return m


# --- the log -----------------------------------------------------------------

def read_log(wal_dir, dim):
    """[(lsn, kind, payload)] of the intact records, in LSN order."""
    names = sorted(n for n in os.listdir(wal_dir) if n.endswith(".log"))
    records = []
    expect = None
    for i, name in enumerate(names):
        data = open(os.path.join(wal_dir, name), "rb").read()
        last = i == len(names) - 1
        if len(data) < 32:
            if last:
                continue
            raise Corrupt(f"{name}: short header")
        magic, major, minor, res, first_lsn, res2, hcrc = struct.unpack_from("<8sHHIQII", data, 0)
        if magic != b"VDBWAL\0\0" or major != 1 or crc32(data[:28]) != hcrc or int(name[:-4]) != first_lsn:
            raise Corrupt(f"{name}: header")
        if expect is not None and first_lsn != expect:
            raise Corrupt(f"{name}: does not continue the previous file")
        expect = first_lsn
        at = 32
        while at < len(data):
            torn = None
            if at + 17 > len(data):
                torn = "short frame"
            else:
                body_len, rcrc = struct.unpack_from("<II", data, at)
                if body_len < 9 or body_len > 9 + 64 * MiB or at + 8 + body_len > len(data):
                    torn = "bad length"
                elif crc32(data[at:at + 4] + data[at + 8:at + 8 + body_len]) != rcrc:
                    torn = "bad CRC"
                else:
                    lsn, kind = struct.unpack_from("<QB", data, at + 8)
                    if lsn != expect or kind not in (1, 2, 3):
                        torn = "bad lsn or kind"
            if torn:
                if last:
                    break  # a torn tail: the records before it stand
                raise Corrupt(f"{name}: {torn} at {at}")
            records.append((lsn, kind, data[at + 17:at + 8 + body_len]))
            expect += 1
            at += 8 + body_len
    return records


def decode_upsert(payload, dim):
    (n,) = struct.unpack_from("<I", payload, 0)
    at = 4
    rows = []
    def string(at):
        (ln,) = struct.unpack_from("<I", payload, at)
        return payload[at + 4:at + 4 + ln].decode("utf-8"), at + 4 + ln

    for _ in range(n):
        (rid, flag) = struct.unpack_from("<QB", payload, at)
        at += 9
        if flag > 3:
            raise Corrupt(f"row flags {flag}")
        p = None
        if flag & 1:
            (ln,) = struct.unpack_from("<I", payload, at)
            at += 4
            p = payload[at:at + ln]
            if len(p) != ln:
                raise Corrupt("upsert payload cut short")
            at += ln
        fields = {}
        if flag & 2:
            (count,) = struct.unpack_from("<H", payload, at)
            at += 2
            for _ in range(count):
                ln = payload[at]
                name = payload[at + 1:at + 1 + ln].decode("ascii")
                ty = FIELD_TYPES.get(payload[at + 1 + ln])
                at += 2 + ln
                if ty == "keyword":
                    v, at = string(at)
                elif ty == "int":
                    (v,), at = struct.unpack_from("<q", payload, at), at + 8
                elif ty == "float":
                    (v,), at = struct.unpack_from("<d", payload, at), at + 8
                elif ty == "bool":
                    v, at = bool(payload[at]), at + 1
                elif ty == "keywords":
                    (k,) = struct.unpack_from("<I", payload, at)
                    at += 4
                    words = []
                    for _ in range(k):
                        w, at = string(at)
                        words.append(w)
                    v = tuple(sorted(set(words)))
                else:
                    raise Corrupt(f"field {name}: unknown type")
                fields[name] = v
        vec = struct.unpack_from(f"<{dim}f", payload, at)
        at += 4 * dim
        rows.append((rid, vec, p, fields))
    if at != len(payload):
        raise Corrupt("trailing bytes in an upsert")
    return rows


def decode_delete(payload):
    (n,) = struct.unpack_from("<I", payload, 0)
    if len(payload) != 4 + 8 * n:
        raise Corrupt("delete length")
    return struct.unpack_from(f"<{n}Q", payload, 4)


# --- a collection's visible rows --------------------------------------------

def visible_rows(cdir):
    m = read_manifest(os.path.join(cdir, "MANIFEST"))
    return m, rows_of(m, cdir, os.path.join(cdir, "wal"))


# Rows whose codes check_codes recomputed (reported by `check`).
CODES_CHECKED = [0]
# Of those, rows whose extended codes (format 1.4) were recomputed too.
EXTENDED_CHECKED = [0]


def rows_of(m, files_dir, wal_dir):
    """The visible rows of manifest `m` whose files are in `files_dir`,
    with the log in `wal_dir` (None: no log)."""
    cdir = files_dir
    dim = int(m["dim"])
    c = None
    if m["centroids"] != "-":
        c = read_centroids(os.path.join(cdir, m["centroids"]))
        if c["dim"] != dim or c["generation"] != int(m["generation"]):
            raise Corrupt("centroid file does not match the manifest")
    live = {}
    steps = [(seq, 0, name) for seq, name in m["segment"]] + [(seq, 1, name) for seq, name in m["deletes"]]
    for seq, is_delete, name in sorted(steps):
        path = os.path.join(cdir, name)
        if is_delete:
            _, ids = read_deletes(path)
            for i in ids:
                live.pop(i, None)
        else:
            h, rows = read_segment(path, dim)
            trained = int(m["trained_generation"] or m["generation"])
            if not trained <= h["generation"] <= int(m["generation"]):
                raise Corrupt(f"{name}: generation")
            if h["codes"] is not None:
                if c is None:
                    raise Corrupt(f"{name}: codes in an untrained collection")
                # Codes are made with the centroids of the segment's
                # generation: the current file's for the current generation.
                if h["generation"] == int(m["generation"]):
                    CODES_CHECKED[0] += check_codes(path, h, rows, c["values"], m["metric"])
            for rid, vec, p, fields in rows:  # row order: a later row wins
                live[rid] = (vec, p, fields)
    if wal_dir is None:
        return live
    flushed = int(m["flushed_lsn"])
    first = True
    for lsn, kind, payload in read_log(wal_dir, dim):
        if lsn <= flushed:
            continue
        if first and lsn != flushed + 1:
            raise Corrupt(f"log starts at {lsn} after flushed_lsn {flushed}")
        first = False
        if kind == 1:
            for rid, vec, p, fields in decode_upsert(payload, dim):
                live[rid] = (vec, p, fields)
        elif kind == 2:
            for rid in decode_delete(payload):
                live.pop(rid, None)
    return live


# --- snapshots ---------------------------------------------------------------

SNAPSHOT_KEYS = ("name", "collection", "created_at", "uid")


def read_snapshot(repo, name):
    """A snapshot's descriptor, checked: (its keys, its files, its
    manifest as read_manifest gives it)."""
    path = os.path.join(repo, f"{name}.snapshot")
    body = checked_body(open(path, "rb").read(), path)
    marker = body.find(b"\nmanifest ")
    if marker < 0:
        raise Corrupt(f"{path}: no manifest line")
    head = body[:marker + 1].decode()
    rest = body[marker + 1:]
    line_end = rest.index(b"\n")
    n = int(rest[len("manifest "):line_end])
    manifest = rest[line_end + 1:]
    if len(manifest) != n:
        raise Corrupt(f"{path}: manifest of {len(manifest)} bytes, not {n}")
    lines = head.split("\n")
    if lines[0] != "vdb-snapshot 1" or lines[-1] != "":
        raise Corrupt(f"{path}: first line or line ends")
    keys, files = {}, []
    for line in lines[1:-1]:
        key, value = line.split(" ", 1)
        if key == "file":
            fname, length = value.split(" ")
            files.append((fname, int(length)))
        elif key in SNAPSHOT_KEYS and key not in keys:
            keys[key] = value
        else:
            raise Corrupt(f"{path}: key {key!r}")
    for key in SNAPSHOT_KEYS:
        if key not in keys:
            raise Corrupt(f"{path}: {key} missing")
    m = parse_manifest(manifest, f"{path} (its manifest)")
    named = ([m["centroids"]] if m["centroids"] != "-" else []) + \
        [f for _, f in m["segment"]] + [f for _, f in m["deletes"]]
    if [f for f, _ in files] != named:
        raise Corrupt(f"{path}: files {files} are not the manifest's {named}")
    if m["uid"] != keys["uid"]:
        raise Corrupt(f"{path}: uid {keys['uid']} is not the manifest's {m['uid']}")
    store = os.path.join(repo, "files", keys["uid"])
    for fname, length in files:
        got = os.path.getsize(os.path.join(store, fname))
        if got != length:
            raise Corrupt(f"{path}: {fname} is {got} bytes, the descriptor says {length}")
    return keys, files, m, store


# --- writing test data through the server, and comparing --------------------

def stubs(server):
    import grpc
    from vdb.v1 import vdb_pb2 as pb, vdb_pb2_grpc as rpc
    return pb, rpc.VdbStub(grpc.insecure_channel(server))


def populate(server):
    pb, stub = stubs(server)
    dim = 5
    for name, metric in [("spec_l2", pb.METRIC_L2), ("spec_ip", pb.METRIC_INNER_PRODUCT), ("spec_cos", pb.METRIC_COSINE)]:
        fields = [pb.FieldSpec(name=n, type=t) for n, t in
                  [("album", "keyword"), ("year", "int"), ("score", "float"), ("ok", "bool"), ("tags", "keywords")]] \
            if name == "spec_l2" else []
        # spec_ip keeps RaBitQ codes in its segments (format 1.3), and
        # extended codes (1.4).
        index_type = "ivf_rabitq" if name == "spec_ip" else "ivf_flat"
        stub.CreateCollection(pb.CreateCollectionRequest(
            name=name, config=pb.CollectionConfig(dim=dim, metric=metric, nlist=4, min_rows_per_list=5,
                                                  fields=fields, index_type=index_type)))

        def row(i, version):
            r = pb.Row(id=i, vector=[math.sin(i * 0.7 + k + version) * (1 + i % 3) for k in range(dim)])
            if fields:
                if i % 2:
                    r.fields["album"].keyword = ["cats", "dogs", "bats"][(i + version) % 3]
                if i % 5:
                    r.fields["year"].int = 1990 + i - 3 * version
                if i % 3 == 0:
                    r.fields["score"].float = i / 7.0
                if i % 4 != 1:
                    r.fields["ok"].bool = (i + version) % 2 == 0
                if i % 6:
                    r.fields["tags"].keywords.values.extend([f"t{i % 4}", "all", f"v{version}"][: 1 + i % 3])
            if i % 3 == 1:
                r.payload = b""
            elif i % 3 == 2:
                r.payload = f"{name} row {i} v{version}".encode()
            return r

        def upsert(ids, version):
            stub.Upsert(pb.UpsertRequest(collection=name, rows=[row(i, version) for i in ids]))

        upsert(range(0, 120), 0)
        stub.Flush(pb.MaintenanceRequest(collection=name))          # trains: a segment
        upsert(range(100, 160), 1)                                   # replaces some rows
        stub.Delete(pb.DeleteRequest(collection=name, ids=[3, 4, 5, 150]))
        stub.Flush(pb.MaintenanceRequest(collection=name))          # a segment and a delete file
        upsert(range(155, 170), 2)                                   # left in the log
        stub.Delete(pb.DeleteRequest(collection=name, ids=[7, 160]))
        upsert([8], 3)
    # A snapshot (it flushes spec_l2) and a collection restored from it.
    stub.CreateSnapshot(pb.CreateSnapshotRequest(collection="spec_l2", name="spec_snap"))
    stub.RestoreSnapshot(pb.RestoreSnapshotRequest(snapshot="spec_snap", name="spec_restored"))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def check_normalisation(name, live):
    """Recomputes the cosine rows whose payload names their input (row i,
    version v) with the format's arithmetic and compares bit for bit."""
    done = 0
    for rid, (vec, p, _) in live.items():
        if not p:
            continue
        i, v = (int(x) for x in p.decode().removeprefix(f"{name} row ").split(" v"))
        raw = [f32(math.sin(i * 0.7 + k + v) * (1 + i % 3)) for k in range(len(vec))]
        s = 0.0
        for x in raw:
            s += x * x
        n = math.sqrt(s)
        want = tuple(f32(x / n) for x in raw) if n > 0 else tuple(raw)
        if want != vec:
            sys.exit(f"{name}: row {rid}: stored {vec}, the specified normalisation gives {want}")
        done += 1
    if done == 0:
        sys.exit(f"{name}: no row to check the normalisation on")
    return done


def check(server, data_dir):
    pb, stub = stubs(server)
    root = os.path.join(data_dir, "collections")
    names = sorted(n for n in os.listdir(root) if not n.startswith("."))
    if not names:
        sys.exit("no collections to check")
    total = 0
    for name in names:
        m, live = visible_rows(os.path.join(root, name))
        info = stub.DescribeCollection(pb.DescribeCollectionRequest(name=name))
        if info.stats.rows != len(live):
            sys.exit(f"{name}: the files hold {len(live)} visible rows, the server {info.stats.rows}")
        ids = sorted(live)
        for start in range(0, len(ids), 1000):
            got = stub.Get(pb.GetRequest(collection=name, ids=ids[start:start + 1000]))
            if got.missing:
                sys.exit(f"{name}: the server misses {list(got.missing)[:5]}")
            for r in got.rows:
                vec, p, fields = live[r.id]
                served_fields = {}
                for fname, v in r.fields.items():
                    kind = v.WhichOneof("kind")
                    served_fields[fname] = tuple(sorted(v.keywords.values)) if kind == "keywords" \
                        else getattr(v, kind)
                if served_fields != fields:
                    sys.exit(f"{name}: row {r.id}: fields {served_fields} vs {fields} from the files")
                if tuple(struct.unpack(f"<{len(vec)}f", struct.pack(f"<{len(r.vector)}f", *r.vector))) != vec:
                    sys.exit(f"{name}: row {r.id}: vector {list(r.vector)} vs {vec} from the files")
                served = r.payload if r.HasField("payload") else None
                if served != p:
                    sys.exit(f"{name}: row {r.id}: payload {served!r} vs {p!r} from the files")
        # An id the files say is absent is absent at the server too.
        gone = [i for i in range(0, 200) if i not in live][:50]
        if gone:
            got = stub.Get(pb.GetRequest(collection=name, ids=gone))
            if sorted(got.missing) != gone:
                sys.exit(f"{name}: the server has rows the files say are gone")
        if name == "spec_cos":
            normalised = check_normalisation(name, live)
            print(f"{name}: {normalised} stored vectors are their inputs normalised exactly as specified")
        kinds = {"absent": sum(p is None for _, p, _ in live.values()),
                 "empty": sum(p == b"" for _, p, _ in live.values()),
                 "bytes": sum(bool(p) for _, p, _ in live.values()),
                 "field values": sum(len(f) for _, _, f in live.values())}
        print(f"{name}: {len(live)} rows read from {len(m['segment'])} segment(s), "
              f"{len(m['deletes'])} delete file(s) and the log equal the server's ({kinds})")
        total += len(live)
    repo = os.path.join(data_dir, "snapshots")
    snaps = sorted(n[:-len(".snapshot")] for n in os.listdir(repo) if n.endswith(".snapshot")) \
        if os.path.isdir(repo) else []
    for snap in snaps:
        keys, files, m, store = read_snapshot(repo, snap)
        live = rows_of(m, store, None)
        # The collection has not changed since: the snapshot holds its rows.
        _, now = visible_rows(os.path.join(root, keys["collection"]))
        if live != now:
            sys.exit(f"snapshot {snap}: {len(live)} rows differ from {keys['collection']}'s {len(now)}")
        print(f"snapshot {snap} of {keys['collection']}: {len(files)} files, {len(live)} rows, "
              f"read from the repository as specified, equal to the collection's")
    if not CODES_CHECKED[0]:
        sys.exit("no segment with codes was checked (spec_ip is an ivf_rabitq collection)")
    if EXTENDED_CHECKED[0] != CODES_CHECKED[0]:
        sys.exit(f"{CODES_CHECKED[0] - EXTENDED_CHECKED[0]} coded rows without extended codes (format 1.4)")
    print(f"spec reader: {total} rows in {len(names)} collections read from the files as docs/format.md "
          f"specifies them, all equal to what the server returns; {len(snaps)} snapshot(s) read; "
          f"{CODES_CHECKED[0]} rows' RaBitQ codes and extended codes recomputed from the format's "
          f"rotation, bit for bit")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("populate")
    p.add_argument("--server", required=True)
    c = sub.add_parser("check")
    c.add_argument("--server", required=True)
    c.add_argument("--data-dir", required=True)
    a = ap.parse_args()
    try:
        if a.cmd == "populate":
            populate(a.server)
        else:
            check(a.server, a.data_dir)
    except Corrupt as e:
        sys.exit(f"spec reader: {e}")


if __name__ == "__main__":
    main()
