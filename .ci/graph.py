#!/usr/bin/env python3
"""The shape of the source tree, checked: no circle of files, no long file.

For every crate of the workspace (a directory with a Cargo.toml and a src/),
each module file is a node, and a `use crate::...`, `use super::...` or
`use self::...` line (or a `crate::a::b` path in code) is an edge to the file
that holds the module the path names. A circle of edges is a circle of files:
no file on it can be read or changed alone. A parent's own `mod child;` line
is not an edge (declaring is not depending), but a parent that `use`s or
re-exports a child's item depends on it like any other file.

Also: a file with more than LIMIT lines before its first `#[cfg(test)]` is
too long to hold one idea, and no source names the toml crate's private
serde names (a minor toml release may change them).

Prints what it finds; exits 1 if anything is wrong. `--report` prints the
sizes and edges as well.
"""

import os
import re
import sys

LIMIT = 700
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"target", ".git", "fixtures"}
PRIVATE = re.compile(r"\$__toml_private|__toml_private_datetime|serde_spanned::__")


def crates(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            yield dirpath


def module_files(src):
    """Maps a module path (tuple) to its file, for every file under src/."""
    mods = {}
    for dirpath, _, filenames in os.walk(src):
        for f in filenames:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                mods[()] = full
                continue
            if rel[0] == "bin":
                continue  # binaries are crate roots of their own
            if rel[-1] == "mod":
                rel = rel[:-1]
            mods.setdefault(tuple(rel), full)
    return mods


def module_of(mods, path):
    """The module tuple a file stands for."""
    for m, f in mods.items():
        if f == path:
            return m
    return None


USE = re.compile(r"\buse\s+((?:crate|super|self)(?:::\w+)*(?:::\{[^;]*\})?)\s*(?:as\s+\w+\s*)?;", re.S)
# A path in code, matched whole: never a head of a longer path or of a
# `::{...}` list (a use line's, read whole by USE), which would make a false
# edge to the module the head names.
PATH = re.compile(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)(?!\w|::[\w{])")
PUB_USE = re.compile(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]*);", re.S)


def expand(tree):
    """`a::{b, c::{d}}` into ['a::b', 'a::c::d'] (enough for use lines)."""
    m = re.match(r"^([\w:]*?)::\{(.*)\}$", tree, re.S)
    if not m:
        return [tree]
    head, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        p = re.sub(r"\s+as\s+\w+", "", p.strip())
        if not p:
            continue
        for e in expand(p):
            out.append(head + "::" + e if e != "self" else head)
    return out


def strip_tests(text):
    """The text before the first #[cfg(test)] (tests may use anything)."""
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]


def normalize(mods, here, path):
    """A path as a full tuple from the crate root, or None if it leaves the
    crate. A first segment naming a child module of `here` (2018 paths) is
    relative to `here`."""
    segs = path.split("::")
    if segs[0] == "crate":
        return tuple(segs[1:])
    if segs[0] in ("super", "self"):
        base = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        return tuple(base + segs)
    if tuple(here) + (segs[0],) in mods:
        return tuple(here) + tuple(segs)
    return None


def longest_module(mods, full):
    for n in range(len(full), -1, -1):
        if full[:n] in mods:
            return n
    return 0


def resolve(mods, reexports, here, path, depth=0):
    """The file a path leads to, following `pub use` re-exports: a file
    that names `crate::Registry` depends on the file that defines it, not
    on the crate root that re-exports it."""
    full = normalize(mods, here, path)
    if full is None:
        return None
    n = longest_module(mods, full)
    m, rest = full[:n], full[n:]
    if rest and depth < 16:
        target = reexports.get(m, {}).get(rest[0])
        if target is not None:
            return resolve(mods, reexports, m, "crate::" + "::".join(target + rest[1:]), depth + 1)
    return m


def reexports_of(mods, texts):
    """For each module: name -> full path it re-exports (`pub use`)."""
    out = {}
    for m, text in texts.items():
        names = {}
        for u in PUB_USE.finditer(text):
            for p in expand(re.sub(r"\s+", "", u.group(1))):
                full = normalize(mods, m, p)
                if full is not None and full:
                    names[full[-1]] = full
        out[m] = names
    return out


def edges_of(mods):
    texts = {}
    for m, f in mods.items():
        with open(f, encoding="utf-8") as fh:
            text = strip_tests(fh.read())
        texts[m] = re.sub(r"//[^\n]*", "", text)
    reexports = reexports_of(mods, texts)
    edges = {}
    for m, text in texts.items():
        targets = set()
        for u in USE.finditer(text):
            for p in expand(re.sub(r"\s+", "", u.group(1))):
                t = resolve(mods, reexports, m, p)
                if t is not None:
                    targets.add(t)
        for u in re.finditer(r"\buse\s+(\w+(?:::\w+)*(?:::\{[^;]*\})?)\s*(?:as\s+\w+\s*)?;", text, re.S):
            if u.group(1).split("::")[0] in ("crate", "super", "self"):
                continue
            for p in expand(re.sub(r"\s+", "", u.group(1))):
                t = resolve(mods, reexports, m, p)
                if t is not None:
                    targets.add(t)
        for p in PATH.finditer(text):
            t = resolve(mods, reexports, m, p.group(1))
            if t is not None:
                targets.add(t)
        targets.discard(m)
        edges[m] = targets
    return edges


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    report = "--report" in sys.argv
    bad = 0
    for crate in sorted(crates(ROOT)):
        src = os.path.join(crate, "src")
        mods = module_files(src)
        rel = lambda f: os.path.relpath(f, ROOT)
        for m, f in sorted(mods.items()):
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
            n = strip_tests(text).count("\n")
            if n > LIMIT:
                print(f"long file: {rel(f)} has {n} lines before #[cfg(test)] (at most {LIMIT})")
                bad += 1
            elif report:
                print(f"{n:5} {rel(f)}")
            if PRIVATE.search(text):
                print(f"private toml name: {rel(f)} names a private serde name of the toml crates")
                bad += 1
        edges = edges_of(mods)
        if report:
            for m, ts in sorted(edges.items()):
                for t in sorted(ts):
                    print(f"  {rel(mods[m])} -> {rel(mods[t])}")
        for comp in cycles(edges):
            names = sorted(rel(mods[m]) for m in comp)
            print(f"circle of {len(names)} files: " + " <-> ".join(names))
            bad += 1
    if bad:
        print(f"graph: {bad} problem(s)")
        return 1
    print("graph: no circle of files, no file over the limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
