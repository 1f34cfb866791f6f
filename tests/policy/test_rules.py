"""What the policies in force say, without a database: the client's address behind proxies,
IP rules, and a :class:`PolicySnapshot` built from rows (IP checks, model policy, rate limits)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from deepspace_lab.policy.rules import (
    IPDeniedError,
    IPRules,
    ModelNotAllowedError,
    PolicySnapshot,
    RateSpec,
    client_address,
    parse_networks,
)

ip = ipaddress.ip_address
TRUSTED = parse_networks("10.0.0.0/8,fd00::/8")


# -- client_address ----------------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "xff", "trusted", "client"), [
    # no proxy configured: the header is never read, whatever it says
    ("198.51.100.7", "1.2.3.4", (), "198.51.100.7"),
    ("10.0.0.1", "1.2.3.4", (), "10.0.0.1"),
    # an untrusted peer wrote the header itself: a spoofed address is ignored
    ("198.51.100.7", "1.2.3.4", TRUSTED, "198.51.100.7"),
    ("198.51.100.7", "1.2.3.4, 10.0.0.2", TRUSTED, "198.51.100.7"),
    # a trusted peer without a header (or an empty one) is the client
    ("10.0.0.1", None, TRUSTED, "10.0.0.1"),
    ("10.0.0.1", "", TRUSTED, "10.0.0.1"),
    # trusted peer: the right-most hop that is not a trusted proxy is the client; what the
    # client itself put on the left is not believed
    ("10.0.0.1", "1.2.3.4", TRUSTED, "1.2.3.4"),
    ("10.0.0.1", "6.6.6.6, 1.2.3.4", TRUSTED, "1.2.3.4"),
    # several trusted proxies in a chain are skipped
    ("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.9.9.9, 10.0.0.2", TRUSTED, "1.2.3.4"),
    (" 10.0.0.1 ", " 1.2.3.4 ,10.0.0.2 ", TRUSTED, "1.2.3.4"),
    # only trusted proxies: the left-most of them (nothing untrusted was ever seen)
    ("10.0.0.1", "10.0.0.3, 10.0.0.2", TRUSTED, "10.0.0.3"),
    # a malformed hop stops the walk at the last address that could be trusted
    ("10.0.0.1", "1.2.3.4, garbage, 10.0.0.2", TRUSTED, "10.0.0.2"),
    ("10.0.0.1", "1.2.3.4, garbage", TRUSTED, "10.0.0.1"),
    ("10.0.0.1", "1.2.3.4:443", TRUSTED, "10.0.0.1"),
    ("10.0.0.1", "1.2.3.4, , 10.0.0.2", TRUSTED, "10.0.0.2"),
    # IPv6 peers and hops
    ("fd00::1", "2001:db8::5", TRUSTED, "2001:db8::5"),
    ("fd00::1", "2001:db8::5, fd00::2", TRUSTED, "2001:db8::5"),
    ("2001:db8::9", "1.2.3.4", TRUSTED, "2001:db8::9"),
    ("fe80::1%eth0", None, TRUSTED, "fe80::1"),
    # IPv4-mapped IPv6: the IPv4 address it is (so an IPv4 trusted range applies to it)
    ("::ffff:10.0.0.1", "1.2.3.4", TRUSTED, "1.2.3.4"),
    ("::ffff:198.51.100.7", "1.2.3.4", TRUSTED, "198.51.100.7"),
    ("10.0.0.1", "::ffff:1.2.3.4", TRUSTED, "1.2.3.4"),
    # an IPv4 trusted range never trusts an IPv6 peer, nor the reverse
    ("2001:db8::1", "1.2.3.4", parse_networks("0.0.0.0/0"), "2001:db8::1"),
    ("10.0.0.1", "1.2.3.4", parse_networks("::/0"), "10.0.0.1"),
])
def test_client_address(peer: str, xff: str | None, trusted: Any, client: str) -> None:
    found = client_address(peer, xff, trusted)
    assert found == ip(client)
    assert type(found) is type(ip(client))  # a mapped address comes back as IPv4


@pytest.mark.parametrize("peer", [None, "", "garbage", "300.1.1.1"])
def test_client_address_without_a_usable_peer_is_unknown(peer: str | None) -> None:
    """The header alone is never believed: no peer, no address, even if a proxy is trusted."""
    assert client_address(peer, "1.2.3.4", TRUSTED) is None


# -- IPRules -----------------------------------------------------------------------------------


def rules(allow: str = "", deny: str = "") -> IPRules:
    return IPRules(parse_networks(allow), parse_networks(deny))


def test_no_rules_refuse_nothing_not_even_an_unknown_address() -> None:
    assert IPRules().refuses(ip("1.2.3.4")) is None
    assert IPRules().refuses(None) is None


def test_deny_refuses_what_it_matches_only() -> None:
    deny = rules(deny="203.0.113.0/24")
    assert deny.refuses(ip("203.0.113.9")) == "the address is on a deny list"
    assert deny.refuses(ip("203.0.114.9")) is None


def test_an_allow_rule_makes_an_allow_list() -> None:
    allow = rules(allow="192.0.2.0/24,2001:db8::/32")
    assert allow.refuses(ip("192.0.2.1")) is None
    assert allow.refuses(ip("2001:db8::1")) is None
    assert allow.refuses(ip("192.0.3.1")) == "the address is not on the allow list"
    assert allow.refuses(ip("2001:db9::1")) == "the address is not on the allow list"


def test_deny_beats_allow() -> None:
    both = rules(allow="10.0.0.0/8", deny="10.1.0.0/16")
    assert both.refuses(ip("10.1.2.3")) == "the address is on a deny list"
    assert both.refuses(ip("10.2.2.3")) is None
    assert both.refuses(ip("11.0.0.1")) == "the address is not on the allow list"


def test_ipv4_rules_never_match_ipv6_addresses() -> None:
    everything_v4 = "0.0.0.0/0"
    assert rules(deny=everything_v4).refuses(ip("2001:db8::1")) is None
    assert rules(deny="::/0").refuses(ip("1.2.3.4")) is None
    # an IPv4-only allow list does not list an IPv6 address: refused
    assert rules(allow=everything_v4).refuses(ip("2001:db8::1")) == "the address is not on the allow list"
    assert rules(allow=everything_v4).refuses(ip("1.2.3.4")) is None


@pytest.mark.parametrize("scope_rules", [rules(deny="203.0.113.0/24"), rules(allow="0.0.0.0/0,::/0")])
def test_an_unknown_address_is_refused_by_any_rule(scope_rules: IPRules) -> None:
    assert scope_rules.refuses(None) == "the client address is unknown"


# -- PolicySnapshot ----------------------------------------------------------------------------


def row(kind: str, scope: str, scope_id: str, spec: dict[str, Any], subject: str = "") -> dict[str, Any]:
    return {"kind": kind, "scope": scope, "scope_id": scope_id, "subject": subject, "spec": spec}


SNAPSHOT_ROWS = [
    row("ip_rule", "global", "", {"action": "deny"}, "203.0.113.0/24"),
    row("ip_rule", "org", "org_a", {"action": "allow"}, "192.0.2.0/24"),
    row("ip_rule", "org", "org_a", {"action": "deny"}, "192.0.2.128/25"),
    row("ip_rule", "org", "org_b", {"action": "deny"}, "198.51.100.0/24"),
    row("rate_limit", "org", "org_a", {"rpm": 60, "tpm": 0, "concurrency": 0}),
    row("rate_limit", "project", "prj_a", {"rpm": 0, "tpm": 5000, "concurrency": 2}),
    row("rate_limit", "key", "key_a", {"rpm": 10}),  # absent fields: no limit
    row("rate_limit", "org", "org_b", {"concurrency": 3}),
    row("model_policy", "org", "org_a", {"allow": ["m1", "m2", "m3"]}),
    row("model_policy", "project", "prj_a", {"allow": ["m2", "m3", "m4"]}),
    row("model_policy", "project", "prj_none", {"allow": []}),
]


@pytest.fixture
def snap() -> PolicySnapshot:
    return PolicySnapshot.build(7, SNAPSHOT_ROWS)


def test_build_sorts_rows_into_their_scopes(snap: PolicySnapshot) -> None:
    assert snap.epoch == 7
    assert snap.global_ip == rules(deny="203.0.113.0/24")
    assert snap.org_ip == {"org_a": rules(allow="192.0.2.0/24", deny="192.0.2.128/25"),
                           "org_b": rules(deny="198.51.100.0/24")}
    assert snap.rates == {("org", "org_a"): RateSpec(rpm=60), ("project", "prj_a"): RateSpec(tpm=5000, concurrency=2),
                          ("key", "key_a"): RateSpec(rpm=10), ("org", "org_b"): RateSpec(concurrency=3)}
    assert snap.models[("org", "org_a")] == {"m1", "m2", "m3"}
    assert snap.models[("project", "prj_none")] == frozenset()


def test_an_empty_snapshot_refuses_nothing() -> None:
    empty = PolicySnapshot.build(0, [])
    empty.check_global_ip(None)
    empty.check_org_ip("org_a", None)
    empty.check_model("anything", org_id="org_a", project_id="prj_a")
    assert empty.allowed_models(org_id="org_a", project_id="prj_a") is None
    assert empty.rate_specs(org_id="org_a", project_id="prj_a", api_key_id="key_a") == []


def test_check_global_ip(snap: PolicySnapshot) -> None:
    snap.check_global_ip(ip("192.0.2.1"))
    snap.check_global_ip(ip("2001:db8::1"))
    with pytest.raises(IPDeniedError) as info:
        snap.check_global_ip(ip("203.0.113.50"))
    assert (info.value.code, info.value.http_status) == ("ip_denied", 403)
    assert "deny list" in info.value.message
    with pytest.raises(IPDeniedError):
        snap.check_global_ip(None)


def test_check_org_ip_uses_that_org_rules_only(snap: PolicySnapshot) -> None:
    snap.check_org_ip("org_a", ip("192.0.2.1"))
    refused = [("org_a", "192.0.2.200"),  # allowed range, but denied by the narrower deny
               ("org_a", "198.51.100.1"),  # not on org_a's allow list
               ("org_a", None),
               ("org_b", "198.51.100.1")]
    for org, address in refused:
        with pytest.raises(IPDeniedError) as info:
            snap.check_org_ip(org, ip(address) if address else None)
        assert (info.value.code, info.value.http_status) == ("ip_denied", 403), (org, address)
        assert "organization" in info.value.message
    snap.check_org_ip("org_b", ip("192.0.2.200"))  # org_a's rules are not org_b's
    snap.check_org_ip("org_c", ip("203.0.113.50"))  # no org rules; the global ones are checked apart
    snap.check_org_ip("org_c", None)


def test_check_model_is_org_and_project(snap: PolicySnapshot) -> None:
    for model in ("m2", "m3"):  # in both lists
        snap.check_model(model, org_id="org_a", project_id="prj_a")
    for model, scope in (("m1", "project"), ("m4", "org"), ("m9", "org")):
        with pytest.raises(ModelNotAllowedError) as info:
            snap.check_model(model, org_id="org_a", project_id="prj_a")
        assert (info.value.code, info.value.http_status, info.value.param) == ("model_not_allowed", 403, "model")
        assert f"not allowed for this {scope}" in info.value.message
    snap.check_model("m1", org_id="org_a", project_id=None)  # the org's list alone
    snap.check_model("m1", org_id="org_a", project_id="prj_other")
    snap.check_model("m4", org_id="org_b", project_id=None)  # no policy: any model
    snap.check_model("m4", org_id="org_b", project_id="prj_a")  # the project's list alone
    with pytest.raises(ModelNotAllowedError):
        snap.check_model("m1", org_id="org_b", project_id="prj_a")
    with pytest.raises(ModelNotAllowedError) as info:
        snap.check_model("m1", org_id="org_b", project_id="prj_none")  # an empty list allows nothing
    assert "allowed: none" in info.value.message


def test_allowed_models_is_the_intersection(snap: PolicySnapshot) -> None:
    assert snap.allowed_models(org_id="org_a", project_id="prj_a") == ["m2", "m3"]
    assert snap.allowed_models(org_id="org_a", project_id=None) == ["m1", "m2", "m3"]
    assert snap.allowed_models(org_id="org_b", project_id="prj_a") == ["m2", "m3", "m4"]
    assert snap.allowed_models(org_id="org_b", project_id=None) is None
    assert snap.allowed_models(org_id="org_a", project_id="prj_none") == []


def test_rate_specs_of_org_project_and_key(snap: PolicySnapshot) -> None:
    assert snap.rate_specs(org_id="org_a", project_id="prj_a", api_key_id="key_a") == [
        ("org", "org_a", RateSpec(rpm=60)), ("project", "prj_a", RateSpec(tpm=5000, concurrency=2)),
        ("key", "key_a", RateSpec(rpm=10))]
    assert snap.rate_specs(org_id="org_b", project_id="prj_b", api_key_id=None) == [
        ("org", "org_b", RateSpec(concurrency=3))]
    assert snap.rate_specs(org_id="org_c", project_id=None, api_key_id="key_a") == [("key", "key_a", RateSpec(rpm=10))]
    # an id is looked up in its own scope only: an org id given as a project id matches nothing
    assert snap.rate_specs(org_id="org_c", project_id="org_a", api_key_id="prj_a") == []
