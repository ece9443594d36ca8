"""Shared helpers of the ledger tests: the golden-vector generator as a module, paths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ASSETS = Path(__file__).resolve().parent.parent / "assets"
VECTORS = ASSETS / "vectors"
GOLDEN = ASSETS / "golden"


def load_make_golden() -> ModuleType:
    """tests/assets/make_golden.py, imported once (it is a script, not a package module)."""
    name = "auditlog_make_golden"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ASSETS / "make_golden.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load tests/assets/make_golden.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
