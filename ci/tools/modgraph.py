#!/usr/bin/env python3
"""The module graph of every crate of the repository, and the house rules it must keep.

Reads each crate's sources (its `src/` tree, test code and comments left out) and
builds the graph of its modules: an edge from a module to every module whose items it
uses, through `use` declarations and `crate::`, `super::` and `self::` paths, with
re-exports (`pub use a::B`, `pub use a::*`) followed to the module that defines the
item. It then checks, and exits 1 naming each break:

- no cycle among a crate's files (each file is a module) nor among its top-level
  modules;
- no source file over 800 lines (`cli.rs` of the binary: 300);
- in the binary crate, nothing imports `cli`, and only `cli` imports `commands`.

Usage: modgraph.py [ROOT]          check ROOT (default: the repository)
       modgraph.py --graph [ROOT]  also print every crate's edges
"""
import os
import re
import sys

MAX_LINES = 800
MAX_LINES_BY_FILE = {"harness/src/cli.rs": 300}
BINARY_CRATE = "harness"


def crates(root):
    """(crate dir relative to root, src dir) of every package with a src/lib.rs or main.rs."""
    out = []
    for dp, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules", "fuzz")]
        if "Cargo.toml" in files and os.path.isdir(os.path.join(dp, "src")):
            src = os.path.join(dp, "src")
            if os.path.exists(os.path.join(src, "lib.rs")) or os.path.exists(os.path.join(src, "main.rs")):
                out.append((os.path.relpath(dp, root), src))
    return sorted(out)


def strip(text):
    """The code without comments, string and char literals (replaced by spaces)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 12]):
            m = re.match(r"'(\\[^']*|[^\\'])'", text[i:])
            i += len(m.group(0)) if m else 1
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_code(code):
    """Removes `#[cfg(test)]` items (a `mod x { ... }` block or any braced item)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        j = m.end()
        semi, brace = code.find(";", j), code.find("{", j)
        if brace < 0 or (0 <= semi < brace):
            code = code[:m.start()] + code[semi + 1:]
            continue
        depth, k = 0, brace
        while k < len(code):
            if code[k] == "{":
                depth += 1
            elif code[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        code = code[:m.start()] + code[k + 1:]


def module_files(src):
    """Module path (tuple) -> file, and test-only modules' files left out."""
    mods = {}
    for dp, _, fs in os.walk(src):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dp, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                rel = []
            mods[tuple(rel)] = os.path.join(dp, f)
    return mods


def expand_use(tree):
    """`a::{b, c::{D, e as f}}` -> ['a::b', 'a::c::D', 'a::c::e']."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def rec(prefix, t):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(t):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(t[start:i])
                start = i + 1
        parts.append(t[start:])
        for part in parts:
            if not part:
                continue
            b = part.find("{")
            if b >= 0:
                rec(prefix + part[:b], part[b + 1:part.rindex("}")])
            else:
                out.append(prefix + part)

    rec("", tree)
    return [x.rstrip(":") for x in out]


def defined_items(code):
    names = set(re.findall(r"\b(?:struct|enum|fn|const|static|type|trait|union|mod|macro_rules!)\s+([A-Za-z_]\w*)", code))
    return names


def analyse(crate_dir, src):
    files = module_files(src)
    codes = {m: drop_test_code(strip(open(f, encoding="utf-8").read())) for m, f in files.items()}
    # Test-only modules (`#[cfg(test)] mod x;`) are not part of the graph.
    for m, f in list(files.items()):
        raw = strip(open(f, encoding="utf-8").read())
        for name in re.findall(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", raw):
            for k in [k for k in files if k[:len(m) + 1] == m + (name,)]:
                files.pop(k, None)
                codes.pop(k, None)
    uses, reexports, globs = {}, {}, {}
    for m, code in codes.items():
        paths = []
        for u in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", code):
            for p in expand_use(u.group(2)):
                paths.append(p)
                if u.group(1):
                    last = p.split("::")[-1]
                    if last == "*":
                        globs.setdefault(m, []).append(p[:-3])
                    else:
                        reexports.setdefault(m, {})[last] = p
        body = re.sub(r"\b(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", " ", code)
        paths += re.findall(r"\b((?:crate|super|self)(?:::[A-Za-z_]\w*)+)", body)
        uses[m] = paths
    defs = {m: defined_items(re.sub(r"\b(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", " ", c)) for m, c in codes.items()}

    def absolute(m, path):
        """`path` as seen from module `m`, from the crate root; `None` for another
        crate's path or a local name."""
        parts = path.split("::")
        if parts[0] == "crate":
            return tuple(parts[1:])
        if parts[0] in ("super", "self"):
            base = m
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    base = base[:-1]
                parts = parts[1:]
            return base + tuple(parts)
        if m + (parts[0],) in files:
            return m + tuple(parts)
        return None

    def resolve(full, seen=()):
        """The module that defines the item at `full` (or the module itself)."""
        if full in seen:
            return None
        k = len(full)
        while k >= 0 and full[:k] not in files:
            k -= 1
        if k < 0:
            return None
        mod, rest = full[:k], full[k:]
        if not rest:
            return mod
        name = rest[0]
        if name in defs.get(mod, ()):
            return mod
        r = reexports.get(mod, {}).get(name)
        if r is not None:
            a = absolute(mod, r)
            if a is not None:
                return resolve(a + rest[1:], seen + (full,))
        for g in globs.get(mod, []):
            a = absolute(mod, g)
            if a is not None:
                got = resolve(a + rest, seen + (full,))
                if got is not None:
                    return got
        return mod

    edges = {m: set() for m in files}
    for m, paths in uses.items():
        for p in paths:
            a = absolute(m, p)
            if a is None:
                continue
            t = resolve(a)
            if t is None or t == m:
                continue
            edges[m].add(t)
    # The crate root is a facade: its re-exports are followed, not edges of its own.
    edges[()] = set()
    return files, edges


def cycles(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in nodes:
                continue
            if w not in index:
                strong(w)
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
                out.append(sorted(comp))
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return out


def name(m):
    return "::".join(m) if m else "crate"


def main(argv):
    show = "--graph" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    problems = []
    for crate_dir, src in crates(root):
        files, edges = analyse(crate_dir, src)
        for comp in cycles(set(files), edges):
            problems.append(f"{crate_dir}: module cycle among files: {' <-> '.join(name(m) for m in comp)}")
        top = {m[:1] for m in files if m}
        top_edges = {}
        for m, ts in edges.items():
            for t in ts:
                if m[:1] and t[:1] and m[:1] != t[:1]:
                    top_edges.setdefault(m[:1], set()).add(t[:1])
        for comp in cycles(top, top_edges):
            problems.append(f"{crate_dir}: module cycle among top-level modules: {' <-> '.join(name(m) for m in comp)}")
        if crate_dir == BINARY_CRATE:
            for m, ts in edges.items():
                for t in ts:
                    if t[:1] == ("cli",) and m[:1] != ("cli",):
                        problems.append(f"{crate_dir}: {name(m)} imports {name(t)}: nothing may import cli")
                    if t[:1] == ("commands",) and m[:1] not in (("cli",), ("commands",)):
                        problems.append(f"{crate_dir}: {name(m)} imports {name(t)}: only cli may import commands")
        if show:
            print(f"# {crate_dir}")
            for m in sorted(edges):
                for t in sorted(edges[m]):
                    print(f"  {name(m)} -> {name(t)}")
    for dp, dirs, fs in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules")]
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(dp, f)
                rel = os.path.relpath(p, root)
                n = sum(1 for _ in open(p, encoding="utf-8", errors="replace"))
                limit = MAX_LINES_BY_FILE.get(rel, MAX_LINES)
                if n > limit:
                    problems.append(f"{rel}: {n} lines (at most {limit})")
    for p in problems:
        print(p)
    if not problems:
        print(f"ok: no module cycle, no file over its size, the binary's layers kept ({len(crates(root))} crates)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
