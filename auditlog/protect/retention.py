"""Retention classes (C14): how long a request's content is kept, fixed when it starts.

Each ``request.start`` of a recorder with a policy carries ``retention``: ``{"class": name,
"legal": bool, "until": decimal ns}``, ``until`` the end of the class's period from the
request's ``ts``. A *legal* class
(a law requires keeping the records: ``sec-17a4``, ``hipaa``, ``eu-ai-act``) also blocks erasure
until then (GDPR Art. 17(3)(b)). ``auditlog retention apply`` crypto-shreds every request past its
``until`` that no legal hold covers, under one signed ``erasure`` record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from auditlog.errors import ConfigurationError

__all__ = ["CLASSES", "RetentionClass", "RetentionPolicy", "apply_retention"]

_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class RetentionClass:
    name: str
    days: int
    legal: bool  # a law requires keeping the content this long: erasure is refused before


#: Built-in classes. SEC 17a-4(b)/FINRA 4511: six years; HIPAA 164.316(b)(2): six years; EU AI Act
#: Art. 19: at least six months (183 days); ``default``: one year, no legal minimum.
CLASSES: dict[str, RetentionClass] = {
    c.name: c
    for c in (
        RetentionClass("sec-17a4", 6 * 366, True),
        RetentionClass("hipaa", 6 * 366, True),
        RetentionClass("eu-ai-act", 183, True),
        RetentionClass("default", 365, False),
    )
}


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which class each tenant's requests get (``default_class`` for unlisted tenants)."""

    tenants: dict[str, str] = field(default_factory=dict)
    default_class: str = "default"
    classes: dict[str, RetentionClass] = field(default_factory=lambda: dict(CLASSES))

    def __post_init__(self) -> None:
        for name in (self.default_class, *self.tenants.values()):
            if name not in self.classes:
                raise ConfigurationError(
                    f"unknown retention class {name!r}; known: {', '.join(sorted(self.classes))}"
                )

    @classmethod
    def from_file(cls, path: str | Path) -> RetentionPolicy:
        """``{"default": class, "tenants": {tenant: class}, "classes": {name: {"days": n,
        "legal": bool}}}`` (every member optional; ``classes`` adds to the built-in ones)."""
        try:
            doc = orjson.loads(Path(path).read_bytes())
            classes = dict(CLASSES)
            for name, spec in doc.get("classes", {}).items():
                classes[name] = RetentionClass(name, int(spec["days"]), bool(spec["legal"]))
            return cls(
                tenants={str(t): str(c) for t, c in doc.get("tenants", {}).items()},
                default_class=str(doc.get("default", "default")),
                classes=classes,
            )
        except (
            OSError,
            orjson.JSONDecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as exc:
            raise ConfigurationError(f"retention policy {path}: {exc}") from None

    def header_field(self, tenant: str, ts: int) -> dict[str, Any]:
        """The ``retention`` member of a ``request.start`` of ``tenant`` at ``ts``."""
        klass = self.classes[self.tenants.get(tenant, self.default_class)]
        return {"class": klass.name, "legal": klass.legal, "until": str(ts + klass.days * _DAY_NS)}


def apply_retention(
    engine: Engine,
    *,
    signer: Any,
    policy: RetentionPolicy | None = None,
    origin: str | None = None,
    by: str = "auditlog retention apply",
    now_ns: int,
) -> Any:
    """Crypto-shred every request whose retention ended by ``now_ns`` and that no hold covers.

    Returns the :class:`~auditlog.protect.erasure.ErasureResult`, or None when nothing is due.
    ``now_ns`` is the clock (injectable: tests move it forward).
    """
    from auditlog.protect.erasure import shred_due

    return shred_due(engine, signer=signer, origin=origin, by=by, now_ns=now_ns)
