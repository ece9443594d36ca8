"""Request and response models of the hold and erasure routes (C15, C16; OpenAPI is generated
from these). Orders are strict: an unknown member, an empty or blank text, a scope that names
nothing or an inverted time range is a 422 before anything is written."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from auditlog.store.cursors import MAX_SQL_INT

__all__ = [
    "ErasureList",
    "ErasureOrderIn",
    "ErasurePublic",
    "ErasureTargetPublic",
    "HoldIn",
    "HoldList",
    "HoldPublic",
    "HoldReleaseIn",
    "HoldReleasePublic",
    "HoldScopePublic",
]

#: Longest reason or legal basis an order may carry (it is kept in a signed record for years).
MAX_TEXT = 1000
#: Most request ids one erasure order may name.
MAX_ERASE_IDS = 100


#: A name: printable (no control character, which PostgreSQL text cannot all hold), not blank.
Name = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=255,
        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    ),
]
#: A reason: any text but NUL, not blank.
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$"),
]
Nanos = Annotated[int, Field(ge=0, le=MAX_SQL_INT, description="ns since the Unix epoch, UTC")]


class HoldScopePublic(BaseModel):
    """What a hold covers: a request matches when it matches every member given
    (``from_ts`` <= its start < ``to_ts``)."""

    model_config = ConfigDict(extra="forbid")

    tenant: Name | None = None
    principal: Name | None = Field(default=None, description="the principal of the request")
    request_id: Name | None = None
    from_ts: Nanos | None = None
    to_ts: Nanos | None = None

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("a hold needs a scope: tenant, principal, request_id or a time range")
        if self.from_ts is not None and self.to_ts is not None and self.from_ts >= self.to_ts:
            raise ValueError("from_ts must be before to_ts")
        return self


class HoldIn(BaseModel):
    """Place a legal hold (admin). Who places it is the caller's API key."""

    model_config = ConfigDict(extra="forbid")

    scope: HoldScopePublic
    reason: Text = Field(description="why: the case, the regulator's request, the court order")


class HoldPublic(BaseModel):
    """A hold in force, as its signed ``hold.place`` record says."""

    id: str = Field(description="<log>#<seq> of the hold.place record")
    scope: HoldScopePublic
    reason: str
    placed_by: str = Field(description="API key id, or the name given to auditlog hold place")
    placed_ts: int = Field(description="ns since the Unix epoch, UTC")


class HoldList(BaseModel):
    """The holds in force that the caller may see, oldest first."""

    items: list[HoldPublic]


class HoldReleaseIn(BaseModel):
    """Release a hold (admin)."""

    model_config = ConfigDict(extra="forbid")

    reason: Text


class HoldReleasePublic(BaseModel):
    """A release, recorded as a signed ``hold.release`` record."""

    id: str = Field(description="the released hold")
    released_by: str
    reason: str


class ErasureOrderIn(BaseModel):
    """Crypto-shred requests' content (admin): by ``request_ids``, by ``tenant`` and
    ``principal``, or by ``subject`` (a principal id, in every tenant). Who orders it is the
    caller's API key."""

    model_config = ConfigDict(extra="forbid")

    request_ids: list[Name] = Field(default_factory=list, max_length=MAX_ERASE_IDS)
    tenant: Name | None = None
    principal: Name | None = None
    subject: Name | None = None
    reason: Text
    legal_basis: Text = Field(description='e.g. "GDPR Art. 17(1)(a)"')

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        chosen = [
            bool(self.request_ids),
            self.tenant is not None or self.principal is not None,
            self.subject is not None,
        ]
        if sum(chosen) != 1 or (chosen[1] and (self.tenant is None or self.principal is None)):
            raise ValueError(
                "select by request_ids, or by tenant and principal, or by subject (one of them)"
            )
        return self


class ErasureTargetPublic(BaseModel):
    """A request an erasure named: shredded, or blocked (``because``)."""

    log: str
    request_id: str
    tenant: str | None
    because: str | None = Field(description="what blocked it (a hold, a legal retention period)")


class ErasurePublic(BaseModel):
    """An erasure (``erasure`` record) or a refused one (``admin`` record ``erase.refused``)."""

    id: str = Field(description="<log>#<seq> of the record")
    outcome: Literal["erased", "refused"]
    principal: str
    reason: str
    legal_basis: str
    ts: int = Field(description="ns since the Unix epoch, UTC")
    requests: list[ErasureTargetPublic] = Field(
        description="the requests it named that the caller may see"
    )


class ErasureList(BaseModel):
    """The erasures and refused erasures the caller may see, oldest first."""

    items: list[ErasurePublic]
