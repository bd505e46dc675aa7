from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stalela.fiscal.core.seal import (
    build_seal,
    canonical_bytes,
    public_jwk_from_public_key,
    verify_seal,
)
from stalela.fiscal.signing import (
    KeyBackend,
    SigningError,
    SoftwareKeyBackend,
    load_or_create_master_key,
    parse_master_key,
)

MASTER = bytes(range(32))
PAYLOAD = {"tenant_id": "t_1", "outlet_id": "o_1", "counter": 7, "total": "10.00", "key_id": "k1"}


@pytest.fixture
def backend() -> SoftwareKeyBackend:
    return SoftwareKeyBackend(MASTER)


def test_satisfies_the_backend_protocol(backend: SoftwareKeyBackend) -> None:
    assert isinstance(backend, KeyBackend)
    assert backend.name == "software"


def test_seal_round_trip_verifies_with_the_jwk_only(backend: SoftwareKeyBackend) -> None:
    generated = backend.generate("k1")
    assert generated.public_jwk["kid"] == "k1" and generated.private_ref
    signature = backend.sign("k1", generated.private_ref, canonical_bytes(PAYLOAD))
    assert len(signature) == 64
    assert verify_seal(build_seal(PAYLOAD, signature, "k1"), generated.public_jwk).valid


def test_stored_blob_signs_in_a_fresh_process(backend: SoftwareKeyBackend) -> None:
    generated = backend.generate("k1")
    restarted = SoftwareKeyBackend(MASTER)  # empty cache: must decrypt the blob
    signature = restarted.sign("k1", generated.private_ref, canonical_bytes(PAYLOAD))
    assert verify_seal(build_seal(PAYLOAD, signature, "k1"), generated.public_jwk).valid


def test_blob_follows_the_documented_format(backend: SoftwareKeyBackend) -> None:
    generated = backend.generate("k1")
    blob = generated.private_ref
    assert blob is not None and blob[0] == 1
    der = AESGCM(MASTER).decrypt(blob[1:13], blob[13:], b"stalela-keystore-v1:k1")
    private_key = serialization.load_der_private_key(der, password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert public_jwk_from_public_key(private_key.public_key(), "k1") == generated.public_jwk
    assert der not in blob


def test_wrong_master_key_fails_as_signer_unavailable(backend: SoftwareKeyBackend) -> None:
    generated = backend.generate("k1")
    other = SoftwareKeyBackend(bytes(32))
    with pytest.raises(SigningError) as caught:
        other.sign("k1", generated.private_ref, b"data")
    assert caught.value.status == 503 and caught.value.code == "signer_unavailable"
    assert "does not authenticate" in caught.value.detail


def test_blob_swapped_between_key_ids_fails(backend: SoftwareKeyBackend) -> None:
    first, second = backend.generate("k1"), backend.generate("k2")
    assert second.private_ref is not None
    with pytest.raises(SigningError):
        backend.sign("k1", second.private_ref, b"data")  # even though both are cached
    with pytest.raises(SigningError):
        SoftwareKeyBackend(MASTER).sign("k2", first.private_ref, b"data")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:-1],
        lambda b: b[:10],
        lambda b: b"",
        lambda b: b"\x02" + b[1:],
        lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:],
    ],
)
def test_damaged_blobs_fail(backend: SoftwareKeyBackend, mangle) -> None:
    blob = backend.generate("k1").private_ref
    assert blob is not None
    with pytest.raises(SigningError):
        SoftwareKeyBackend(MASTER).sign("k1", mangle(blob), b"data")


def test_missing_key_material_fails(backend: SoftwareKeyBackend) -> None:
    with pytest.raises(SigningError):
        backend.sign("k1", None, b"data")


def test_blob_from_a_database_buffer_is_accepted(backend: SoftwareKeyBackend) -> None:
    generated = backend.generate("k1")
    assert generated.private_ref is not None
    signature = SoftwareKeyBackend(MASTER).sign("k1", memoryview(generated.private_ref), b"x")
    assert len(signature) == 64


def test_cache_is_bounded_and_evicted_keys_still_sign() -> None:
    backend = SoftwareKeyBackend(MASTER, cache_size=2)
    keys = [(f"k{i}", backend.generate(f"k{i}")) for i in range(5)]
    assert len(backend._cache) == 2
    for key_id, generated in keys:
        payload = dict(PAYLOAD, key_id=key_id)
        signature = backend.sign(key_id, generated.private_ref, canonical_bytes(payload))
        assert verify_seal(build_seal(payload, signature, key_id), generated.public_jwk).valid
    assert len(backend._cache) == 2


def test_rejects_a_master_key_of_the_wrong_size() -> None:
    with pytest.raises(ValueError):
        SoftwareKeyBackend(b"short")


def test_concurrent_signing_from_8_threads(backend: SoftwareKeyBackend) -> None:
    generated = {key_id: backend.generate(key_id) for key_id in ("k1", "k2")}

    def work(i: int) -> bool:
        key_id = ("k1", "k2")[i % 2]
        payload = dict(PAYLOAD, counter=i, key_id=key_id)
        signature = backend.sign(key_id, generated[key_id].private_ref, canonical_bytes(payload))
        seal = build_seal(payload, signature, key_id)
        return verify_seal(seal, generated[key_id].public_jwk).valid

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(work, range(800)))


# -- master key ----------------------------------------------------------------------------------


def test_master_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temporary left over


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: load_or_create_master_key(path), range(32)))
    assert keys == {path.read_bytes()}


def test_master_key_file_with_garbage_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"not a key")
    with pytest.raises(ValueError):
        load_or_create_master_key(path)
    assert path.read_bytes() == b"not a key"


def test_master_key_file_may_hold_hex_text(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(MASTER.hex() + "\n")
    os.chmod(path, 0o600)
    assert load_or_create_master_key(path) == MASTER


@pytest.mark.parametrize(
    "text",
    [
        MASTER.hex(),
        MASTER.hex().upper(),
        base64.b64encode(MASTER).decode(),
        base64.urlsafe_b64encode(MASTER).decode().rstrip("="),
        "  " + MASTER.hex() + "\n",
    ],
)
def test_parse_master_key(text: str) -> None:
    assert parse_master_key(text) == MASTER


@pytest.mark.parametrize(
    "text", ["", "abcd", MASTER.hex()[:-2], base64.b64encode(bytes(31)).decode(), "x" * 44]
)
def test_parse_master_key_rejects_other_lengths(text: str) -> None:
    with pytest.raises(ValueError):
        parse_master_key(text)


async def test_a_run_of_signatures_is_counted_by_result(monkeypatch) -> None:
    """sign_many counts its signatures once per run: those made as ok, the one that failed as an error."""
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from stalela.fiscal.signing import registry

    class FailsFourth:
        calls = 0

        def sign(self, key_id, ref, data):  # noqa: ANN001
            FailsFourth.calls += 1
            if FailsFourth.calls == 4:
                raise SigningError("the key store is away", code="signer_unavailable")
            return b"s" * 64

    monkeypatch.setattr(registry, "backend_for", lambda settings, name: FailsFourth())
    key = SimpleNamespace(id="k1", private_ref="r", backend="software")

    def count(result: str) -> float:
        return REGISTRY.get_sample_value("signer_operations_total", {"backend": "software", "result": result}) or 0.0

    ok, errors = count("ok"), count("error")
    assert await registry.sign_many(None, key, [b"a", b"b"]) == [b"s" * 64] * 2
    with pytest.raises(SigningError):
        await registry.sign_many(None, key, [b"c", b"d"])
    assert (count("ok") - ok, count("error") - errors) == (3, 1)
