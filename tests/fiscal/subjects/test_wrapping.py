"""Tenant keys wrap subject data keys: in software under the master key, or inside SoftHSM2 (real PKCS#11)."""
from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from stalela.fiscal.signing.base import SigningError
from stalela.fiscal.subjects import crypto, wrapping
from stalela.kit.ids import new_id
from tests.conftest import make_settings


def _round_trip(settings, backend_name: str) -> None:
    tenant_key_id = new_id("tk")
    backend, material = wrapping.new_tenant_key(settings, "ten_1", tenant_key_id)
    assert backend == backend_name
    data_key = crypto.new_data_key()
    wrapped = wrapping.wrap(settings, "ten_1", backend, tenant_key_id, material, "sk_1", data_key)
    assert data_key not in wrapped
    assert wrapping.unwrap(settings, "ten_1", backend, tenant_key_id, material, "sk_1", wrapped) == data_key
    # Bound to its subject key and tenant: copied onto another row, it does not unwrap.
    for tenant, key in (("ten_2", "sk_1"), ("ten_1", "sk_2")):
        with pytest.raises(SigningError):
            wrapping.unwrap(settings, tenant, backend, tenant_key_id, material, key, wrapped)
    # Destroyed: nothing unwraps any more.
    wrapping.destroy_tenant_key(settings, backend, tenant_key_id)
    with pytest.raises(SigningError):
        wrapping.unwrap(settings, "ten_1", backend, tenant_key_id, None if backend == "software" else material,
                        "sk_1", wrapped)


def test_software_tenant_key(tmp_path) -> None:
    _round_trip(make_settings(f"sqlite:///{tmp_path}/x.db", tmp_path), "software")


def test_hsm_tenant_key(tmp_path, softhsm_token) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/x.db", tmp_path, signer_backend="pkcs11",
                             pkcs11_library=softhsm_token.library_path, pkcs11_token_label=softhsm_token.token_label,
                             pkcs11_pin=SecretStr(softhsm_token.pin))
    _round_trip(settings, "pkcs11")


def test_buyer_ciphertext_is_bound_to_tenant_and_subject() -> None:
    key = os.urandom(32)
    blob = crypto.encrypt_buyer(key, "ten_1", "sub_1", "c2FsdHNhbHRzYWx0c2FsdA", {"name": "A"})
    assert b'"name":"A"' in crypto.decrypt_buyer(key, "ten_1", "sub_1", blob)
    with pytest.raises(Exception):
        crypto.decrypt_buyer(key, "ten_1", "sub_2", blob)


def test_pseudonyms_normalise_and_are_keyed_per_tenant() -> None:
    master = os.urandom(32)
    assert crypto.pseudonym(master, "t", "tax_id", "30-71234567-1") == crypto.pseudonym(master, "t", "tax_id", "30712345671")
    assert crypto.pseudonym(master, "t", "email", " A@B.cd ") == crypto.pseudonym(master, "t", "email", "a@b.cd")
    assert crypto.pseudonym(master, "t", "email", "a@b.cd") != crypto.pseudonym(master, "u", "email", "a@b.cd")
    assert crypto.pseudonym(master, "t", "email", "a@b.cd") != crypto.pseudonym(os.urandom(32), "t", "email", "a@b.cd")
