"""Password hashing: argon2id at production cost (tests run a cheaper hasher, see tests/conftest.py),
hashes are salted, and a check accepts only the right password."""

from __future__ import annotations

from argon2 import Type

from deepspace_lab.auth.passwords import generate_password, hash_password, verify_password

from ..conftest import PRODUCTION_HASHER


def test_production_hasher_is_argon2id_at_the_rfc_9106_low_memory_cost() -> None:
    assert PRODUCTION_HASHER.type is Type.ID
    assert PRODUCTION_HASHER.time_cost >= 3
    assert PRODUCTION_HASHER.memory_cost >= 64 * 1024  # KiB
    assert PRODUCTION_HASHER.hash("correct horse").startswith("$argon2id$v=19$m=65536,t=3")


def test_hashes_are_salted_and_checked() -> None:
    password = generate_password()
    first, second = hash_password(password), hash_password(password)
    assert first != second and password not in first
    assert verify_password(first, password) and verify_password(second, password)
    assert not verify_password(first, password + "x")
    assert not verify_password("not a hash", password)
