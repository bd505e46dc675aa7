from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11e

from stalela.errors import Conflict
from stalela.fiscal.core.seal import build_seal, canonical_bytes, verify_seal
from stalela.fiscal.signing import KeyBackend, Pkcs11KeyBackend, SigningError
from tests.support.softhsm import SoftHsmToken

pytestmark = pytest.mark.hsm

PAYLOAD = {"tenant_id": "t_1", "outlet_id": "o_1", "counter": 3, "total": "99.50"}


def _backend(token: SoftHsmToken) -> Pkcs11KeyBackend:
    return Pkcs11KeyBackend(token.library_path, token.token_label, token.pin)


def _key_id() -> str:
    # The token outlives single tests (session-scoped), so every test makes its own keys.
    return f"k-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token_session(softhsm_token: SoftHsmToken, pkcs11_backend: Pkcs11KeyBackend) -> Iterator:
    """A session of the test's own, opened without a PIN: private objects are visible to it
    because login state is per application and the backend holds a logged-in session."""
    pkcs11_backend.generate(_key_id())
    token = pkcs11.lib(softhsm_token.library_path).get_token(token_label=softhsm_token.token_label)
    with token.open() as session:
        yield session


def test_satisfies_the_backend_protocol(pkcs11_backend: Pkcs11KeyBackend) -> None:
    assert isinstance(pkcs11_backend, KeyBackend)
    assert pkcs11_backend.name == "pkcs11"


def test_seal_round_trip_verifies_with_the_jwk_only(pkcs11_backend: Pkcs11KeyBackend) -> None:
    key_id = _key_id()
    generated = pkcs11_backend.generate(key_id)
    assert generated.private_ref is None
    assert generated.public_jwk["kid"] == key_id and generated.public_jwk["crv"] == "P-256"
    payload = dict(PAYLOAD, key_id=key_id)
    signature = pkcs11_backend.sign(key_id, None, canonical_bytes(payload))
    assert len(signature) == 64
    assert verify_seal(build_seal(payload, signature, key_id), generated.public_jwk).valid


def test_private_key_never_leaves_the_token(
    pkcs11_backend: Pkcs11KeyBackend, token_session
) -> None:
    key_id = _key_id()
    pkcs11_backend.generate(key_id)
    private = token_session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id.encode())
    assert private.label == key_id
    assert private[Attribute.SENSITIVE] is True
    assert private[Attribute.EXTRACTABLE] is False
    assert private[Attribute.ALWAYS_SENSITIVE] is True
    assert private[Attribute.NEVER_EXTRACTABLE] is True
    assert private[Attribute.TOKEN] is True
    assert private[Attribute.PRIVATE] is True
    with pytest.raises(p11e.AttributeSensitive):
        private[Attribute.VALUE]


def test_keys_persist_for_a_new_backend(
    softhsm_token: SoftHsmToken, pkcs11_backend: Pkcs11KeyBackend
) -> None:
    key_id = _key_id()
    generated = pkcs11_backend.generate(key_id)
    other = _backend(softhsm_token)
    try:
        assert other.public_jwk(key_id) == generated.public_jwk
        payload = dict(PAYLOAD, key_id=key_id)
        seal = build_seal(payload, other.sign(key_id, None, canonical_bytes(payload)), key_id)
        assert verify_seal(seal, generated.public_jwk).valid
    finally:
        other.close()


def test_duplicate_key_id_is_refused(pkcs11_backend: Pkcs11KeyBackend) -> None:
    key_id = _key_id()
    pkcs11_backend.generate(key_id)
    with pytest.raises(Conflict):
        pkcs11_backend.generate(key_id)


def test_unknown_key_is_signer_unavailable(pkcs11_backend: Pkcs11KeyBackend) -> None:
    with pytest.raises(SigningError) as caught:
        pkcs11_backend.sign("no-such-key", None, b"data")
    assert caught.value.status == 503 and caught.value.code == "signer_unavailable"


def test_unknown_token_is_signer_unavailable(softhsm_token: SoftHsmToken) -> None:
    backend = Pkcs11KeyBackend(softhsm_token.library_path, "no-such-token", softhsm_token.pin)
    with pytest.raises(SigningError, match="no-such-token"):
        backend.sign("k", None, b"data")


def test_missing_library_is_signer_unavailable() -> None:
    backend = Pkcs11KeyBackend("/nonexistent/libpkcs11.so", "t", "1234")
    with pytest.raises(SigningError):
        backend.sign("k", None, b"data")


def test_wrong_pin_is_signer_unavailable(softhsm_token: SoftHsmToken) -> None:
    # In this process the token is already logged in (login state is per application), so the
    # PIN is only really checked by a process of its own.
    script = textwrap.dedent(
        f"""
        from stalela.fiscal.signing import Pkcs11KeyBackend, SigningError
        backend = Pkcs11KeyBackend(
            {softhsm_token.library_path!r}, {softhsm_token.token_label!r}, "wrong"
        )
        try:
            backend.sign("k", None, b"data")
        except SigningError as exc:
            print(exc.detail)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "PIN was refused" in done.stdout


def test_recovers_from_a_session_closed_behind_its_back(softhsm_token: SoftHsmToken) -> None:
    backend = _backend(softhsm_token)
    try:
        key_id = _key_id()
        generated = backend.generate(key_id)
        backend._idle[0].session.close()  # what an HSM restart looks like from here
        payload = dict(PAYLOAD, key_id=key_id)
        seal = build_seal(payload, backend.sign(key_id, None, canonical_bytes(payload)), key_id)
        assert verify_seal(seal, generated.public_jwk).valid
    finally:
        backend.close()


def test_concurrent_signing_from_8_threads(pkcs11_backend: Pkcs11KeyBackend) -> None:
    key_ids = [_key_id(), _key_id()]
    keys = {key_id: pkcs11_backend.generate(key_id).public_jwk for key_id in key_ids}

    def work(i: int) -> bool:
        key_id = key_ids[i % 2]
        payload = dict(PAYLOAD, counter=i, key_id=key_id)
        signature = pkcs11_backend.sign(key_id, None, canonical_bytes(payload))
        return verify_seal(build_seal(payload, signature, key_id), keys[key_id]).valid

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(400)))
