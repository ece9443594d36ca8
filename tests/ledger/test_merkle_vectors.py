"""RFC 9162 proof verification against the published transparency-dev/merkle vectors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import VECTORS

from auditlog.errors import VerificationError
from auditlog.ledger.merkle import verify_consistency, verify_inclusion

_ROOT = VECTORS / "rfc9162"


def _cases(kind: str) -> list[Any]:
    files = sorted((_ROOT / kind).rglob("*.json"))
    return [pytest.param(f, id=str(f.relative_to(_ROOT / kind))) for f in files]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in case["proof"] or []]


def test_every_folder_is_present() -> None:
    assert len(_cases("inclusion")) >= 90
    assert len(_cases("consistency")) >= 95


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _proof(case),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _cases("consistency"))
def test_consistency_vector(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (case["size1"], case["size2"], _proof(case), _b64(case["root1"]), _b64(case["root2"]))
    if case["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
