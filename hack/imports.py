#!/usr/bin/env python3
"""Fails on an import circle between the modules of one layer, or an import that goes up a layer.

Each `src/<top>/<module>` (a file, or a directory and its files) is a node; an edge is any
`crate::<top>::<module>` or `super::<module>` path in it. Top-level modules are layered as in
LAYERS (a module may use its own layer and those below). Run by `make lint`.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# Lowest first. A top-level module may import those in its own entry or earlier ones.
LAYERS = [
    {"api", "duration", "bounded", "telemetry", "http", "egress"},
    {"index", "plan", "render", "matrix", "notify", "helm", "watch", "client", "leader", "lean"},
    {"controller", "admission"},
    {"web"},
    {"cli"},
]
LEVEL = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def files_of(path):
    return [path] if path.is_file() else sorted(path.rglob("*.rs"))


def is_test_file(path):
    return path.stem in ("tests", "proptests", "fixtures")


def strip_tests(text):
    """Drops comments and `#[cfg(test)] mod tests { ... }` bodies (tests may use anything)."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def main():
    problems = []
    for top in sorted(p for p in SRC.iterdir() if p.suffix == ".rs" or p.is_dir()):
        name = top.stem
        if name in ("main", "lib", "bin"):
            continue
        texts = [strip_tests(f.read_text()) for f in files_of(top) if not is_test_file(f)]
        for text in texts:
            for other in set(re.findall(r"crate::(\w+)", text)):
                if other in LEVEL and name in LEVEL and LEVEL[other] > LEVEL[name]:
                    problems.append(f"upward import: {name} uses crate::{other}")
    # Circles between the modules inside each top-level directory.
    for top in sorted(p for p in SRC.iterdir() if p.is_dir()):
        nodes = {}
        for p in top.iterdir():
            if p.name in ("mod.rs",) or not (p.suffix == ".rs" or p.is_dir()):
                continue
            nodes[p.stem] = nodes.get(p.stem, []) + files_of(p)
        edges = {n: set() for n in nodes}
        for n, fs in nodes.items():
            for f in fs:
                if is_test_file(f):
                    continue
                text = strip_tests(f.read_text())
                uses = set(re.findall(rf"crate::{top.name}::(\w+)", text))
                # `super::x` from a file directly in `top` (or its own mod.rs) names a sibling.
                if f.parent == top or (f.parent.parent == top and f.name == "mod.rs"):
                    uses |= set(re.findall(r"super::(\w+)", text))
                if f.parent.parent == top and f.name != "mod.rs":
                    uses |= set(re.findall(r"super::super::(\w+)", text))
                edges[n] |= {u for u in uses if u in nodes and u != n}
        state = {}

        def visit(n, path):
            state[n] = 1
            for m in sorted(edges[n]):
                if state.get(m) == 1:
                    cycle = path[path.index(m):] + [m]
                    problems.append(f"import circle in {top.name}: " + " -> ".join(cycle))
                elif m not in state:
                    visit(m, path + [m])
            state[n] = 2

        for n in sorted(nodes):
            if n not in state:
                visit(n, [n])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
