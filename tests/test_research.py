"""The research probes in research/ still fit the code they study: every name they import or
read from a ser_pipeline module exists (private helpers included), and `--help` answers without
starting any work."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

RESEARCH = Path(__file__).parents[1] / "research"
PROBES = sorted(RESEARCH.glob("*.py"))


def names_used(tree: ast.AST) -> list[tuple[str, str]]:
    """(module, name) for every `from ser_pipeline... import name` and every `alias.name` read
    through a module imported as an alias."""
    aliases, used = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ser_pipeline"):
            for alias in node.names:
                module = f"{node.module}.{alias.name}"
                if importlib.util.find_spec(node.module) and _is_module(module):
                    aliases[alias.asname or alias.name] = module
                else:
                    used.append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ser_pipeline") and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            used.append((aliases[node.value.id], node.attr))
    return used


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def test_there_are_probes_and_a_readme_naming_each():
    readme = (RESEARCH / "README.md").read_text()
    assert PROBES and all(f"`{probe.name}`" in readme for probe in PROBES)


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_every_name_a_probe_takes_from_the_package_exists(probe):
    missing = [
        f"{module}.{name}"
        for module, name in names_used(ast.parse(probe.read_text()))
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []


@pytest.mark.slow
@pytest.mark.parametrize("probe", PROBES, ids=lambda p: p.name)
def test_help_answers_without_starting_work(probe):
    result = subprocess.run([sys.executable, str(probe), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage" in result.stdout.lower(), result.stderr[-2000:]
