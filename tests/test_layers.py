"""One direction of dependency: the import graph of the packages, read from their source with `ast`.

The foundation (``suite``) imports no package above it; the methods (``baselines``, then ``aao``, which builds
on DPO) and the benchmarks (``evals``) import only below them; the workflow's entry points (``pipeline``) sit on
top. Every import counts, a lazy one inside a function included. The method registry names its modules as
strings (``suite.methods.METHODS``): that is data, read only when a method is asked for.
"""

from __future__ import annotations

import ast
from collections import defaultdict

import pytest

from tests.workflow_helpers import REPO

LAYERS = {"suite": 0, "baselines": 1, "evals": 1, "aao": 2, "pipeline": 3}


def imports_of(package: str) -> dict[str, set[str]]:
    """Other project packages imported by ``package`` -> the files that import each."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in sorted((REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:  # not an import, or a relative one (it stays inside its package)
                continue
            for name in names:
                top = name.split(".")[0]
                if top in LAYERS and top != package:
                    found[top].add(str(path.relative_to(REPO)))
    return found


GRAPH = {package: imports_of(package) for package in LAYERS}


@pytest.mark.parametrize("package", list(LAYERS))
def test_a_package_imports_only_packages_below_it(package: str) -> None:
    upward = {other: sorted(files) for other, files in GRAPH[package].items() if LAYERS[other] >= LAYERS[package]}
    assert not upward, f"{package} (layer {LAYERS[package]}) imports packages at or above its layer: {upward}"


def test_no_two_packages_import_each_other() -> None:
    cycles = [(a, b) for a in GRAPH for b in GRAPH[a] if a in GRAPH.get(b, {})]
    assert not cycles, cycles


def test_the_foundation_imports_nothing_above_it() -> None:
    assert not GRAPH["suite"], dict(GRAPH["suite"])


def test_every_project_package_has_a_layer() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == set(LAYERS), packages ^ set(LAYERS)
