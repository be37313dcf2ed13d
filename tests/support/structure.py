#!/usr/bin/env python3
"""Report the shape of the Rust code under src/: function lengths, file sizes,
the import graph between files (and its cycles), and the layering of process/.

How it measures:
- Each file is lexed once: comments (`//`, `///`, `//!`, nested `/* */`) are
  blanked, and the contents of string literals (normal, byte, raw `r#".."#`)
  and char literals (`'{'`, not lifetimes like `'a`) are masked, so braces and
  paths are only seen in code. Items under `#[cfg(test)]` (an inline
  `mod tests { .. }` or `mod tests;`, whose file is then skipped entirely) are
  blanked too: nothing below counts test code.
- A function is `fn name` with a body; its length runs from the `fn` line to
  the brace-matched closing `}` inclusive, counting only lines with code (no
  blank or comment-only lines). Nested fns also count on their own.
- A file's size is its lines outside `#[cfg(test)]` items.
- Module = file. References come from `use` trees and from inline paths
  (`crate::a::b`, `super::x`, `self::x`, `pixmirror::` in main.rs, a child
  module or a `use`d module alias). Each resolves to the deepest module file it
  names; `mod x;` declarations are not references.
- Layers: a file may not import a file of a higher layer (`--layers`, default
  LAYERS below; a file with no layer counts as above them all, so a layered
  file may not import it), process/engine may not import process/lang, and
  nothing in process/ imports config (the service turns `[process]` into the
  engine's options).

Usage: structure.py [SRC] [--min N] [--max N] [--file-max N] [--layers SPEC] [--check]
"""
import argparse
import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# Layer by path prefix under src/, first match wins; no arrow from a lower layer up.
LAYERS = "process/plan/=0,process/codec/=1,config=0,error.rs=0,process/lang/=2,process/engine/=2,process/video/=3"
# Pure layers: no async runtime, no HTTP, no files or sockets (config/mod.rs
# reads its file through figment).
PURE = [
    ("src/process/", r"\b(tokio|hyper|std::fs|std::net|std::process)\b", "I/O in process/"),
    ("src/config/", r"\b(tokio|hyper|std::fs|std::process)\b", "I/O in config/"),
]
HYPER_OK = ("src/http/", "src/mirror/", "src/fleet.rs")
TEST_ATTR = re.compile(r"#\[\s*cfg\s*\(\s*(?:all\s*\(\s*)?test\b[^\]]*\]")


def mask(src):
    """Blank comments; replace string/char contents with '_' (newlines kept)."""
    out, i, n = [], 0, len(src)

    def hide(s):
        return "".join(c if c == "\n" else ("_" if not c.isspace() else " ") for c in s)

    while i < n:
        c = src[i]
        prev = src[i - 1] if i else " "
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j): depth += 1; j += 2
                elif src.startswith("*/", j): depth -= 1; j += 2
                else: j += 1
            out.append(re.sub(r"[^\n]", " ", src[i:j])); i = j
        elif c == "r" and not (prev.isalnum() and prev not in "bc" or prev == "_") \
                and (m := re.match(r'r(#*)"', src[i:i + 300])):
            end = src.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(hide(src[i:end])); i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(hide(src[i:j + 1])); i = j + 1
        elif c == "'" and (m := re.match(r"'(\\(x..|u\{[0-9a-fA-F]*\}|.)|[^\\\n])'", src[i:i + 12])):
            out.append(hide(m.group(0))); i += len(m.group(0))
        else:
            out.append(c); i += 1
    return "".join(out)


def item_end(text, i):
    """End (exclusive) of the item starting at i: its `;` or its matching `}`."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c in "([": depth += 1
        elif c in ")]": depth -= 1
        elif c == ";" and depth == 0: return i + 1
        elif c == "{" and depth == 0: return close(text, i) + 1
        i += 1
    return len(text)


def close(text, i, opening="{", closing="}"):
    """Index of the bracket closing the one at i."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == opening: depth += 1
        elif text[j] == closing:
            depth -= 1
            if depth == 0: return j
    return len(text) - 1


def strip_tests(text):
    """Blank #[cfg(test)] items; return (text, lines blanked, `mod x;` names skipped)."""
    skipped, lines = [], 0
    if re.search(r"#!\[\s*cfg\s*\(\s*test\s*\)\s*\]", text):
        return re.sub(r"[^\n]", " ", text), text.count("\n") + 1, skipped
    while m := TEST_ATTR.search(text):
        j = m.end()
        while a := re.match(r"\s*#\[", text[j:]):          # further attributes
            j = close(text, j + a.end() - 1, "[", "]") + 1
        end = item_end(text, j)
        if d := re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text[j:end]):
            skipped.append(d.group(1))
        lines += text.count("\n", m.start(), end) + 1
        text = text[:m.start()] + re.sub(r"[^\n]", " ", text[m.start():end]) + text[end:]
    return text, lines, skipped


def line_of(text, i):
    return text.count("\n", 0, i) + 1


def functions(text):
    code = [bool(l.strip()) for l in text.split("\n")]
    for m in re.finditer(r"\bfn\s+(" + IDENT + ")", text):
        end = item_end(text, m.end())
        if text[end - 1] != "}":
            continue                                     # no body
        a, b = line_of(text, m.start()), line_of(text, end - 1)
        yield m.group(1), a, sum(code[a - 1:b])


def module_path(rel):
    parts = list(rel.with_suffix("").parts)
    if parts in (["lib"], ["main"]): return ()
    return tuple(parts[:-1] if parts[-1] == "mod" else parts)


def parse_use_tree(s):
    """`a::{b, c::{d as e}, f::*}` -> [(segments, alias)]."""
    toks = re.findall(IDENT + r"|::|[{},*]", s)
    pos = 0

    def tree(prefix):
        nonlocal pos
        out, path = [], list(prefix)
        while pos < len(toks):
            t = toks[pos]
            if t == "::": pos += 1
            elif t == "{":
                pos += 1
                while pos < len(toks) and toks[pos] != "}":
                    out += tree(path)
                    if pos < len(toks) and toks[pos] == ",": pos += 1
                pos += 1; return out
            elif t in ",}": break
            elif t == "*": pos += 1; out.append((path, None)); return out
            elif t == "as": alias = toks[pos + 1]; pos += 2; out.append((path, alias)); return out
            elif t == "self" and path: pos += 1; out.append((path, path[-1])); return out
            else: path = path + [t]; pos += 1
        if path != list(prefix): out.append((path, path[-1]))
        return out
    return tree([])


class Crate:
    """The files of src/ (tests skipped), their masked text and module paths."""

    def __init__(self, src):
        self.files, self.size, self.mods, skip = {}, {}, {}, set()
        for f in sorted(src.rglob("*.rs")):
            rel = f.relative_to(src)
            raw = f.read_text(encoding="utf-8")
            text, test_lines, tests = strip_tests(mask(raw))
            base = rel.parent if rel.name in ("mod.rs", "lib.rs", "main.rs") else rel.with_suffix("")
            skip |= {base / (t + ".rs") for t in tests} | {base / t for t in tests}
            self.files[rel] = text
            self.size[rel] = raw.count("\n") + (not raw.endswith("\n")) - test_lines
        for rel in list(self.files):
            if any(rel == s or s in rel.parents for s in skip):
                del self.files[rel]
            elif rel.name != "main.rs":
                self.mods[module_path(rel)] = rel

    def absolute(self, here, segs, aliases):
        """(module path, remaining segments) a path starts from, or None (extern)."""
        main, me, head = here.name == "main.rs", module_path(here), segs[0]
        if head in ("crate", "$crate"):
            return None if main else ((), segs[1:])
        if head == "pixmirror":
            return ((), segs[1:]) if main else None
        if head == "self":
            return me, segs[1:]
        if head == "super":
            n = next((k for k, x in enumerate(segs) if x != "super"), len(segs))
            return me[:-n], segs[n:]
        if not main and me + (head,) in self.mods:
            return me, segs                              # a child module
        if head in aliases:
            return aliases[head], segs[1:]
        return None

    def resolve(self, here, segs, aliases):
        """The deepest module file a path names, or None."""
        start = self.absolute(here, segs, aliases)
        if start is None:
            return None
        path, rest = start
        best = self.mods.get(path)
        for s in rest:
            path += (s,)
            if path not in self.mods:
                break
            best = self.mods[path]
        return best

    def edges_of(self, rel):
        text, out, aliases = self.files[rel], set(), {}
        for m in re.finditer(r"\buse\s+([^;]*);", text):
            for segs, alias in parse_use_tree(m.group(1)):
                out.add(self.resolve(rel, segs, aliases))
                start = self.absolute(rel, segs, aliases)
                if alias and start and start[0] + tuple(start[1]) in self.mods:
                    aliases[alias] = start[0] + tuple(start[1])   # `use crate::a::b;` then `b::f()`
        body = re.sub(r"\buse\s+[^;]*;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
        for m in re.finditer(r"(?<![\w:$])(\$?" + IDENT + r"(?:\s*::\s*" + IDENT + r")+)", body):
            out.add(self.resolve(rel, re.split(r"\s*::\s*", m.group(1)), aliases))
        return out - {rel, None}


def sccs(nodes, edges):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index: visit(v)
    return [c for c in out if len(c) > 1]


def layer(name, spec):
    for prefix, n in (item.rsplit("=", 1) for item in spec.split(",") if item):
        if name.startswith("src/" + prefix):
            return int(n)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", nargs="?", default=Path(__file__).resolve().parents[2] / "src", type=Path)
    ap.add_argument("--min", type=int, default=50, help="list functions longer than this")
    ap.add_argument("--max", type=int, default=60, help="--check: longest function allowed")
    ap.add_argument("--file-max", type=int, default=500, help="longest file allowed (outside tests)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a limit is broken")
    ap.add_argument("--layers", default=LAYERS, metavar="PREFIX=N,...", help=f"layers (default {LAYERS})")
    args = ap.parse_args()
    crate, broken = Crate(args.src), False
    name = lambda rel: "src/" + rel.as_posix()

    fns = [(n, name(rel), line, fname) for rel, t in crate.files.items() for fname, line, n in functions(t)]
    print(f"== functions over {args.min} lines (of {len(fns)} functions in {len(crate.files)} files)")
    for n, path, line, fname in sorted(fns, key=lambda f: (-f[0], f[1], f[2])):
        if n > args.min: print(f"  {n:3d} {path}:{line} {fname}")
    over = [f for f in fns if f[0] > args.max]
    if args.check:
        print(f"== functions over the limit of {args.max} lines: {len(over) or 'none'}")
        for n, path, line, fname in sorted(over, key=lambda f: -f[0]): print(f"  {n:3d} {path}:{line} {fname}")
        broken |= bool(over)

    print(f"== files over {args.file_max} lines outside tests")
    big = sorted(((n, name(r)) for r, n in crate.size.items() if n > args.file_max), key=lambda x: (-x[0], x[1]))
    for n, path in big:
        print(f"  {n:4d} {path}")
    if not big:
        print("none")
    broken |= bool(big)

    edges = {r: crate.edges_of(r) for r in crate.files}
    total = sum(len(v) for v in edges.values())
    print("== purity")
    impure = []
    for rel, text in sorted(crate.files.items()):
        path = name(rel)
        for prefix, pattern, what in PURE:
            if path.startswith(prefix) and re.search(pattern, text):
                impure.append(f"{what}: {path}")
        if re.search(r"\bhyper(::|_util)", text) and not path.startswith(HYPER_OK):
            impure.append(f"hyper outside http, mirror and fleet: {path}")
    print("\n".join(impure) if impure else "process/ and config/ do no I/O; hyper stays in http, mirror, fleet")
    broken |= bool(impure)

    print(f"== imports: {len(crate.files)} files, {total} edges")
    cycles = sccs(crate.files, edges)
    for comp in cycles:
        print("cycle: " + ", ".join(name(c) for c in comp))
        for a in comp:
            for b in sorted(edges[a]):
                if b in comp: print(f"  {name(a)} -> {name(b)}")
    if not cycles: print("no import cycle")
    broken |= bool(cycles)

    print("== layers")
    bad = []
    for a, bs in sorted(edges.items()):
        for b in sorted(bs):
            la, lb = layer(name(a), args.layers), layer(name(b), args.layers)
            if la is not None and (lb is None or la < lb):
                bad.append(f"arrow up: {name(a)} -> {name(b)}")
            if name(a).startswith("src/process/") and name(b).startswith("src/config/"):
                bad.append(f"process -> config: {name(a)} -> {name(b)}")
            if name(a).startswith("src/process/engine/") and name(b).startswith("src/process/lang/"):
                bad.append(f"engine -> lang: {name(a)} -> {name(b)}")
    print("\n".join(bad) if bad else "no arrow up")
    broken |= bool(bad)
    return 1 if args.check and broken else 0


if __name__ == "__main__":
    sys.exit(main())
