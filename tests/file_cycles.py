#!/usr/bin/env python3
"""Checks that no two source files of a crate import each other, directly
or around a loop (`use crate::…`, `use super::…`, `crate::…` paths in
code), resolving `pub use` re-exports to the file that defines the item.

    python3 tests/file_cycles.py crates/vdb-engine/src crates/vdb-wal/src crates/vdbctl/src

Exits 1 and prints each cycle found.
"""

import os
import re
import sys


def module_files(src):
    """module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            mods[tuple(rel)] = path
    return mods


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", text, flags=re.S)
    return text


def use_paths(text, children):
    """Every path a file names through `crate::`, `super::`, `self::` or
    one of its own child modules, expanded (child paths as `self::…`)."""
    out = []
    heads = "crate|super|self" + "".join("|" + c for c in children)
    for m in re.finditer(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+((?:%s)(?:::[^;]+));" % heads, text, flags=re.S):
        out += expand(re.sub(r"\s+", "", m.group(1)))
    for m in re.finditer(r"(?<![:\w])((?:%s)(?:::\w+)+)" % heads, text):
        out.append(m.group(1))
    return ["self::" + p if p.split("::")[0] in children else p for p in out]


def expand(path):
    """`a::{b, c::{d}}` -> [a::b, a::c::d]."""
    i = path.find("{")
    if i < 0:
        return [path]
    prefix, body = path[:i], path[i + 1:path.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    res = []
    for p in parts:
        if p and p != "self":
            res += expand(prefix + p)
        elif p == "self":
            res.append(prefix.rstrip(":"))
    return res


def reexports(mods):
    """(module, name) -> module path it is re-exported from."""
    table = {}
    for mod, path in mods.items():
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", strip(open(path).read()), flags=re.S):
            for p in expand(re.sub(r"\s+", "", m.group(1))):
                segs = [s for s in p.split("::") if s]
                if segs and segs[0] in ("crate", "super", "self"):
                    continue
                name = segs[-1].split(" as ")[-1] if segs else ""
                table[(mod, name)] = tuple(mod) + tuple(segs[:-1])
    return table


def resolve(mod, path, mods, table):
    segs = path.split("::")
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] == "self":
        base, segs = mod, segs[1:]
    else:
        base = mod
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
    cur = tuple(base)
    for s in segs:
        if cur + (s,) in mods:
            cur = cur + (s,)
        elif (cur, s) in table and table[(cur, s)] in mods:
            return table[(cur, s)]
        else:
            break
    return cur if cur in mods else None


def cycles(src):
    mods = module_files(src)
    table = reexports(mods)
    edges = {m: set() for m in mods}
    for mod, path in mods.items():
        text = strip(open(path).read())
        children = [c for c in re.findall(r"\bmod\s+(\w+)\s*;", text) if tuple(mod) + (c,) in mods]
        for p in use_paths(text, children):
            target = resolve(mod, p, mods, table)
            if target is not None and target != mod:
                edges[mod].add(target)
    found, seen = [], set()

    def dfs(node, stack, on):
        for nxt in sorted(edges[node]):
            if nxt in on:
                loop = stack[stack.index(nxt):] + [nxt]
                key = frozenset(loop)
                if key not in seen:
                    seen.add(key)
                    found.append(" -> ".join("/".join(m) or "(root)" for m in loop))
            elif nxt not in done:
                on.add(nxt)
                dfs(nxt, stack + [nxt], on)
                on.discard(nxt)
        done.add(node)

    done = set()
    for m in sorted(mods):
        if m not in done:
            dfs(m, [m], {m})
    return found


def main():
    bad = False
    for src in sys.argv[1:]:
        for c in cycles(src):
            print(f"{src}: import cycle: {c}")
            bad = True
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
