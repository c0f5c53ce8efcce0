"""The reference is independent of what it checks: every module of `projections/reference/`
imports the standard library and the reference's own modules only, never the rest of the
project (whose fast paths the reference is there to hold to the contract).

Read from the source (every `import` and `from ... import`, at any depth, a function's
local imports included), so an import that only runs on some path is caught too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import projections.reference

PACKAGE = "projections.reference"
MODULES = sorted(Path(projections.reference.__file__).parent.glob("*.py"))


def outside_imports(source: str, package: str = PACKAGE) -> list[str]:
    """The modules `source` (a module of `package`) imports that are neither the standard
    library nor `package` itself."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # `from .x import y`: a module beside it, in the package
                continue
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            inside = name == package or name.startswith(package + ".")
            if not inside and (name.startswith(".") or top not in sys.stdlib_module_names):
                out.append(name)
    return out


def test_the_reference_is_a_package_of_several_modules():
    assert {m.name for m in MODULES} >= {"__init__.py", "events.py", "fold.py", "rates.py",
                                         "months.py", "metrics.py"}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_each_module_of_the_reference_imports_nothing_from_the_project(module):
    assert outside_imports(module.read_text()) == []


@pytest.mark.parametrize(("line", "caught"), [
    ("from fractions import Fraction", []),
    ("import json, re", []),
    ("from projections.reference.fold import fold", []),
    ("from projections.reference import events", []),
    ("from .rates import rate", []),
    ("from projections.fold import fold_customer", ["projections.fold"]),
    ("from projections import mrr", ["projections"]),
    ("import ledger.kinds", ["ledger.kinds"]),
    ("from ..mrr import PER_MONTH", ["..mrr"]),
    ("from projections.referenced import x", ["projections.referenced"]),
    ("import numpy as np", ["numpy"]),
    ("def f():\n    from services.metrics import nrr", ["services.metrics"]),
])
def test_the_check_names_every_import_from_outside(line, caught):
    assert outside_imports(line) == caught
