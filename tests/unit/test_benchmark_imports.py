"""The benchmarks are run by hand, never by CI: check at least that every superalign name they import exists.

They import inside worker functions, so a renamed helper would otherwise surface only when someone runs them.
"""

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).parents[2] / "benchmarks").glob("*.py"))


def _superalign_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("superalign")
            for alias in node.names]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_exist(path):
    missing = [f"{module}.{name}" for module, name in _superalign_imports(path)
               if not hasattr(importlib.import_module(module), name)
               and importlib.util.find_spec(f"{module}.{name}") is None]  # a subpackage is a name too
    assert not missing, f"{path.name} imports names that no longer exist: {missing}"


def test_the_check_sees_the_benchmarks():
    assert len(BENCHMARKS) >= 4
    assert any(_superalign_imports(p) for p in BENCHMARKS)
