"""Witness policies: which witnesses' cosignatures make a checkpoint count as witnessed.

The policy file follows the Sigsum policy format that Trillian Tessera's witness groups also
read: one statement a line, ``#`` starts a comment::

    witness <name> <cosigner verifier key> [<URL>]
    group <name> <N | all | any> <member> [<member> ...]
    quorum <witness or group name>

A group is satisfied when at least N of its members are (``all``: every member, ``any``: one);
members are witnesses or groups defined above it. A checkpoint counts as witnessed when the
``quorum`` is satisfied by the witnesses whose cosignatures of it verify. ``quorum none`` is
refused: a policy that needs no witness proves nothing. The URL is only needed by a recorder that
submits checkpoints (C2SP tlog-witness); a verifier reads names and keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from auditlog.errors import FormatError
from auditlog.ledger.cosignature import CosignerKey

__all__ = ["PolicyWitness", "WitnessPolicy"]


@dataclass(frozen=True, slots=True)
class PolicyWitness:
    """A witness of a policy: its policy name, cosigner key and (optional) base URL."""

    name: str
    key: CosignerKey
    url: str | None = None


@dataclass(frozen=True, slots=True)
class _Group:
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class WitnessPolicy:
    """Witnesses, groups and the quorum that decides when a checkpoint is witnessed."""

    witnesses: Mapping[str, PolicyWitness]
    groups: Mapping[str, _Group]
    quorum: str

    @classmethod
    def all_of(cls, keys: Iterable[CosignerKey]) -> WitnessPolicy:
        """Every given witness must cosign (the policy of ``--witness-key`` without a file)."""
        witnesses = {key.name: PolicyWitness(key.name, key) for key in keys}
        if not witnesses:
            raise FormatError("a witness policy needs at least one witness")
        group = _Group(len(witnesses), tuple(witnesses))
        return cls(witnesses=witnesses, groups={"all-witnesses": group}, quorum="all-witnesses")

    @classmethod
    def parse(cls, text: str) -> WitnessPolicy:
        """Parse a policy file; raises :class:`FormatError` naming the offending line."""
        witnesses: dict[str, PolicyWitness] = {}
        groups: dict[str, _Group] = {}
        quorum: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            fields = raw.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                keyword, args = fields[0], fields[1:]
                if keyword in ("witness", "group") and args and args[0] in (*witnesses, *groups):
                    raise FormatError(f"name {args[0]!r} is defined twice")
                if keyword == "witness":
                    witnesses[args[0]] = _witness(args)
                elif keyword == "group":
                    groups[args[0]] = _group(args, {*witnesses, *groups})
                elif keyword == "quorum":
                    if len(args) != 1 or quorum is not None:
                        raise FormatError("exactly one 'quorum <name>' line")
                    quorum = args[0]
                elif keyword != "log":  # Sigsum's log lines name keys this policy has no use for
                    raise FormatError(f"unknown statement {keyword!r}")
            except FormatError as exc:
                raise FormatError(f"witness policy line {number}: {exc}") from None
        if quorum is None:
            raise FormatError("witness policy has no 'quorum' line")
        if quorum == "none":
            raise FormatError("witness policy 'quorum none' needs no witness and proves nothing")
        if quorum not in witnesses and quorum not in groups:
            raise FormatError(f"witness policy quorum {quorum!r} is not defined")
        return cls(witnesses=witnesses, groups=groups, quorum=quorum)

    def witness_for(self, name: str, key_id: bytes) -> PolicyWitness | None:
        """The policy witness whose cosigner key has this name and key id, or None."""
        for witness in self.witnesses.values():
            if witness.key.name == name and witness.key.key_id == key_id:
                return witness
        return None

    def satisfied(self, cosigned: Iterable[str]) -> bool:
        """True when the witnesses named in ``cosigned`` (policy names) satisfy the quorum."""
        return self._holds(self.quorum, frozenset(cosigned))

    def _holds(self, name: str, cosigned: frozenset[str]) -> bool:
        group = self.groups.get(name)
        if group is None:
            return name in cosigned
        return sum(self._holds(m, cosigned) for m in group.members) >= group.threshold


def _witness(args: list[str]) -> PolicyWitness:
    if len(args) not in (2, 3):
        raise FormatError("expected 'witness <name> <verifier key> [<URL>]'")
    url = args[2] if len(args) == 3 else None
    if url is not None and not url.startswith(("http://", "https://")):
        raise FormatError(f"witness URL must be http:// or https://, got {url!r}")
    return PolicyWitness(args[0], CosignerKey.from_key_string(args[1]), url)


def _group(args: list[str], defined: set[str]) -> _Group:
    if len(args) < 3:
        raise FormatError("expected 'group <name> <N|all|any> <member> ...'")
    name, threshold, members = args[0], args[1], tuple(args[2:])
    for member in members:
        if member not in defined:
            raise FormatError(f"group {name!r}: member {member!r} is not defined above it")
    if len(set(members)) != len(members):
        raise FormatError(f"group {name!r} names a member twice")
    if threshold == "all":
        return _Group(len(members), members)
    if threshold == "any":
        return _Group(1, members)
    if not threshold.isdigit() or not 1 <= int(threshold) <= len(members):
        raise FormatError(f"group {name!r}: threshold must be 1..{len(members)}, all or any")
    return _Group(int(threshold), members)
