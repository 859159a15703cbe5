"""The house rules that a reader checks by eye, checked by a test: no import cycles, techniques never import
each other, the report and the studio import records but no technique, and reading a config imports no torch."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
TECHNIQUES = ("baseline", "rlhf", "weak_to_strong", "probes", "autointerp", "critique", "debate", "researcher")
# Infrastructure that drives stages by name (the sweep, the researcher's evaluation server): no technique imported.
BY_NAME_ONLY = ("report", "studio", "world", "models", "sweep", "eval_server")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """superalign modules imported by ``path`` (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("superalign"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("superalign"))
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {name: {m for m in _imports(path, top_level_only) if m in modules and m != name}
            for name, path in modules.items()}


def test_no_import_cycles_at_module_level():
    graph = _graph(top_level_only=True)
    # A package's __init__ importing its own submodules is how packages re-export; not a cycle.
    graph = {m: {d for d in deps if not (d.startswith(m + ".") or m.startswith(d + "."))} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_techniques_never_import_each_other_and_the_report_imports_none():
    graph = _graph(top_level_only=False)
    for name, deps in graph.items():
        parts = name.split(".")
        own = parts[1] if len(parts) > 1 else ""
        for dep in deps:
            other = dep.split(".")[1] if dep.count(".") >= 1 else ""
            if own in TECHNIQUES + BY_NAME_ONLY and other in TECHNIQUES:
                assert other == own, f"{name} imports {dep}"


def test_the_cli_is_imported_by_nothing():
    graph = _graph(top_level_only=False)
    assert [m for m, deps in graph.items() if "superalign.cli" in deps and m != "superalign.__main__"] == []


def test_the_readmes_layout_names_every_package_and_module_and_nothing_else():
    """The README's layout section is the map a newcomer reads first: it must match the tree (it missed four
    packages once)."""
    import re

    root = SRC.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    package, top = set(), set()
    for line in block.splitlines()[2:]:  # after "src/superalign/"
        if line.startswith("  "):  # a package's line, sometimes two entries side by side
            package.update(re.findall(r"(?:^|\s)([a-z_]+(?:/|\.py))(?=\s|$)", line))
        elif line.strip():  # a folder at the repository's root
            top.add(line.split()[0])
    on_disk = {p.name + "/" for p in (SRC / "superalign").iterdir() if (p / "__init__.py").is_file()}
    on_disk |= {p.name for p in (SRC / "superalign").glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    assert package == on_disk
    assert all((root / name).exists() for name in top), top
