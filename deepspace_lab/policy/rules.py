"""What the policies in force say, as a snapshot a gateway process keeps in memory.

A :class:`PolicySnapshot` is built from every policy row in force (:func:`.service.load_snapshot`)
and replaced whenever the database's policy epoch moves, so one query of a single row per
request is all it costs to see every change at once in every process.

IP rules, per scope (global, then the caller's org): a matching ``deny`` refuses; a scope
with any ``allow`` rule refuses every address none of them matches. Global rules are checked
at the door, before the credential is even looked up; an org's once the credential names it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PermissionDenied

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IPDeniedError(PermissionDenied):
    """403 ``ip_denied``: an IP rule refuses the caller's address."""

    default_code = "ip_denied"


class ModelNotAllowedError(PermissionDenied):
    """403 ``model_not_allowed``: the org's or project's model policy does not list the model."""

    default_code = "model_not_allowed"


@dataclass(frozen=True, slots=True)
class RateSpec:
    """Limits of one scope; 0 means no limit of that kind."""

    rpm: int = 0
    tpm: int = 0
    concurrency: int = 0


@dataclass(frozen=True, slots=True)
class IPRules:
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    def refuses(self, address: IPAddress | None) -> str | None:
        """Why this scope refuses ``address`` (None: it does not)."""
        if not self.allow and not self.deny:
            return None
        if address is None:
            return "the client address is unknown"
        if any(address in net for net in self.deny if net.version == address.version):
            return "the address is on a deny list"
        if self.allow and not any(address in net for net in self.allow if net.version == address.version):
            return "the address is not on the allow list"
        return None


@dataclass(slots=True)
class PolicySnapshot:
    epoch: int = -1
    global_ip: IPRules = field(default_factory=IPRules)
    org_ip: dict[str, IPRules] = field(default_factory=dict)
    #: (scope, scope_id) -> limits
    rates: dict[tuple[str, str], RateSpec] = field(default_factory=dict)
    #: (scope, scope_id) -> models allowed
    models: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, epoch: int, rows: Iterable[Mapping[str, Any]]) -> PolicySnapshot:
        snap = cls(epoch=epoch)
        ip: dict[str, tuple[list[IPNetwork], list[IPNetwork]]] = {}
        for row in rows:
            kind, scope, scope_id, spec = row["kind"], row["scope"], row["scope_id"], row["spec"]
            if kind == "ip_rule":
                allow, deny = ip.setdefault(scope_id if scope == "org" else "", ([], []))
                (allow if spec.get("action") == "allow" else deny).append(ipaddress.ip_network(row["subject"]))
            elif kind == "rate_limit":
                snap.rates[(scope, scope_id)] = RateSpec(int(spec.get("rpm") or 0), int(spec.get("tpm") or 0),
                                                         int(spec.get("concurrency") or 0))
            elif kind == "model_policy":
                snap.models[(scope, scope_id)] = frozenset(spec.get("allow") or ())
        for org_id, (allow, deny) in ip.items():
            rules = IPRules(tuple(allow), tuple(deny))
            if org_id == "":
                snap.global_ip = rules
            else:
                snap.org_ip[org_id] = rules
        return snap

    def check_global_ip(self, address: IPAddress | None) -> None:
        reason = self.global_ip.refuses(address)
        if reason:
            raise IPDeniedError(f"access from this address is not allowed: {reason}")

    def check_org_ip(self, org_id: str, address: IPAddress | None) -> None:
        rules = self.org_ip.get(org_id)
        reason = rules.refuses(address) if rules else None
        if reason:
            raise IPDeniedError(f"this organization does not allow access from this address: {reason}")

    def rate_specs(self, *, org_id: str, project_id: str | None,
                   api_key_id: str | None) -> list[tuple[str, str, RateSpec]]:
        """The limits that apply to a caller: (scope, id, limits) for its org, project and key."""
        found = []
        for scope, scope_id in (("org", org_id), ("project", project_id), ("key", api_key_id)):
            if scope_id:
                spec = self.rates.get((scope, scope_id))
                if spec is not None:
                    found.append((scope, scope_id, spec))
        return found

    def check_model(self, model: str, *, org_id: str, project_id: str | None) -> None:
        for scope, scope_id in (("org", org_id), ("project", project_id)):
            allowed = self.models.get((scope, scope_id)) if scope_id else None
            if allowed is not None and model not in allowed:
                raise ModelNotAllowedError(f"model {model!r} is not allowed for this {scope}; "
                                           f"allowed: {', '.join(sorted(allowed)) or 'none'}", param="model")

    def allowed_models(self, *, org_id: str, project_id: str | None) -> list[str] | None:
        """The models the caller may use (None: any enabled model)."""
        sets = [self.models[(s, i)] for s, i in (("org", org_id), ("project", project_id))
                if i and (s, i) in self.models]
        if not sets:
            return None
        return sorted(frozenset.intersection(*sets))


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(p) for p in text.split(",") if p)


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """The client's address: the connection's peer, unless the peer is a trusted proxy, in which
    case ``X-Forwarded-For`` is read from the right, skipping trusted proxies, and the first
    address that is not one is the client. A header from an untrusted peer is ignored (it is
    whatever the client chose to write)."""
    address = _parse(peer)
    if address is None or not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        hop_address = _parse(hop)
        if hop_address is None:
            return address  # a malformed hop: stop at the last address we could trust
        address = hop_address
        if not _trusted(hop_address, trusted):
            return hop_address
    return address


def _trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in net for net in trusted if net.version == address.version)


def _parse(text: str | None) -> IPAddress | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
