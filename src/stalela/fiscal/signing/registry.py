"""The key registry: which key signs for a tenant, and every public key ever used.

The backend (software key store or PKCS#11 token) is chosen once per process from settings; the
registry stores what the backend returns (public JWK, encrypted private key for software) so any
process can sign and anyone can verify.
"""
from __future__ import annotations

import json
import threading
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.errors import NotFound
from stalela.fiscal.signing.base import KeyBackend, SigningError
from stalela.fiscal.signing.models import SigningKey
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.kit.ids import new_id
from stalela.kit.masterkey import master_key
from stalela.observability.metrics import signer_operations

_lock = threading.Lock()
_backends: dict[tuple[str, str], KeyBackend] = {}


def _identity(settings: Settings, name: str) -> str:
    if name == "software":
        # Not resolve()d: this runs on every signature, and a syscall there shows in the profile.
        return settings.master_key.get_secret_value() if settings.master_key else str(
            settings.effective_master_key_file)
    return f"{settings.pkcs11_library}|{settings.pkcs11_token_label}"


def backend_for(settings: Settings, name: str | None = None) -> KeyBackend:
    """One backend instance per process and configuration (a PKCS#11 module loads once per process)."""
    name = name or settings.signer_backend
    cache_key = (name, _identity(settings, name))
    with _lock:
        if cache_key not in _backends:
            _backends[cache_key] = _make_backend(settings, name)
        return _backends[cache_key]


def _make_backend(settings: Settings, name: str) -> KeyBackend:
    if name == "software":
        from stalela.fiscal.signing.keystore import SoftwareKeyBackend

        return SoftwareKeyBackend(master_key(settings))
    if name == "pkcs11":
        from stalela.fiscal.signing.pkcs11 import Pkcs11KeyBackend

        if not settings.pkcs11_library or settings.pkcs11_pin is None:
            raise SigningError("STALELA_PKCS11_LIBRARY and STALELA_PKCS11_PIN must be set for the pkcs11 backend")
        return Pkcs11KeyBackend(settings.pkcs11_library, settings.pkcs11_token_label, settings.pkcs11_pin.get_secret_value())
    raise SigningError(f"unknown signer backend {name!r}")


def reset_backends() -> None:
    """Tests only: forget cached backends (e.g. after changing the master key)."""
    with _lock:
        for backend in _backends.values():
            backend.close()
        _backends.clear()


async def create_key(session: AsyncSession, settings: Settings, tenant_id: str) -> SigningKey:
    """Generate a new key in the configured backend and make it the tenant's active key."""
    backend = backend_for(settings)
    key_id = new_id("sig")
    generated = await anyio.to_thread.run_sync(backend.generate, key_id)
    repo = SigningKeyRepository(session)
    now = utcnow()
    await repo.retire_active(tenant_id, now)
    key = SigningKey(
        tenant_id=tenant_id,
        id=key_id,
        backend=backend.name,
        public_jwk=json.dumps(generated.public_jwk, sort_keys=True),
        private_ref=generated.private_ref,
        status="active",
        created_at=now,
        not_before=now,
    )
    return await repo.add(key)


async def active_key(session: AsyncSession, tenant_id: str) -> SigningKey:
    key = await SigningKeyRepository(session).active(tenant_id)
    if key is None:
        raise SigningError("the tenant has no active signing key", code="no_signing_key")
    return key


async def sign(settings: Settings, key: SigningKey, data: bytes) -> bytes:
    return (await sign_many(settings, key, [data]))[0]


async def sign_many(settings: Settings, key: SigningKey, items: list[bytes]) -> list[bytes]:
    """Signatures of ``items`` in order, in one call to the key store (one thread hop for an HSM)."""
    if not items:
        return []
    backend = backend_for(settings, key.backend)

    def run() -> list[bytes]:
        out: list[bytes] = []
        try:
            for data in items:
                out.append(backend.sign(key.id, key.private_ref, data))
        except BaseException:
            signer_operations(key.backend, ok=len(out), error=1)  # signer_operations_total{backend, result}
            raise
        signer_operations(key.backend, ok=len(out))
        return out

    if key.backend == "software":
        return run()  # microseconds of CPU per signature: not worth a thread hop
    return await anyio.to_thread.run_sync(run)


def public_view(key: SigningKey) -> dict[str, Any]:
    jwk = json.loads(key.public_jwk)
    return {
        **jwk,
        "status": key.status,
        "not_before": key.not_before.isoformat().replace("+00:00", "Z"),
        "not_after": key.not_after.isoformat().replace("+00:00", "Z") if key.not_after else None,
    }


async def get_public_key(session: AsyncSession, key_id: str) -> SigningKey:
    key = await SigningKeyRepository(session).get(key_id)
    if key is None:
        raise NotFound("no such key", code="key_not_found")
    return key
