"""Webhook signing secrets: sealed under a key derived from DEEPSPACE_SECRET_KEY, readable only
with that key, and the signature a receiver recomputes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from deepspace_lab.errors import DeepSpaceError
from deepspace_lab.webhooks import open_secret, seal_secret, signature
from deepspace_lab.webhooks.service import check_url
from deepspace_lab.webhooks.signing import new_secret

KEY = "a-deployment-secret-key-0123456789"


def test_a_sealed_secret_opens_only_with_its_key() -> None:
    secret = new_secret()
    sealed = seal_secret(KEY, secret)
    assert secret not in sealed and seal_secret(KEY, secret) != sealed  # random IV: no equal ciphertexts
    assert open_secret(KEY, sealed) == secret
    with pytest.raises(DeepSpaceError) as refused:
        open_secret(KEY + "-rotated", sealed)
    assert refused.value.code == "webhook_secret_unreadable" and secret not in refused.value.message


def test_the_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"event":"wallet.low_balance"}'
    expected = hmac.new(b"whsec_x", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_x", timestamp=1_700_000_000, body=body) == f"sha256={expected}"
    assert signature("whsec_y", timestamp=1_700_000_000, body=body) != f"sha256={expected}"


@pytest.mark.parametrize("url", ["https://hooks.example.org/x?y=1", "http://10.0.0.1:8080/hook", "http://[::1]/h"])
def test_http_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize("url", ["", "hooks.example.org", "HTTPS://x.example.org", "javascript:alert(1)",
                                 "https://a b.example.org", "https://u@x.example.org", "http://x:0x1/", 5,
                                 "https://x.example.org/" + "a" * 2000])
def test_other_urls_are_refused(url: object) -> None:
    with pytest.raises(DeepSpaceError) as refused:
        check_url(url)
    assert refused.value.code == "invalid_url"


def test_a_receiver_refuses_a_stale_or_altered_delivery() -> None:
    from deepspace_lab.webhooks.deliveries import signed_headers, verify_signature

    headers = signed_headers("whsec_x", body=b'{"a":1}', event="ping", event_id="evt_1", delivery_id="dlv_1",
                             timestamp=1_000_000)
    stamp, mac = headers["X-DeepSpace-Timestamp"], headers["X-DeepSpace-Signature"]
    assert verify_signature("whsec_x", body=b'{"a":1}', timestamp=stamp, signature_header=mac, now=1_000_100)
    assert not verify_signature("whsec_x", body=b'{"a":1}', timestamp=stamp, signature_header=mac, now=1_000_301)
    assert not verify_signature("whsec_x", body=b'{"a":2}', timestamp=stamp, signature_header=mac, now=1_000_000)
    assert not verify_signature("whsec_x", body=b'{"a":1}', timestamp="999999", signature_header=mac, now=1_000_000)
