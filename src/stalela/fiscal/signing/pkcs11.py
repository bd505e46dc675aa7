"""PKCS#11 key backend: P-256 keys generated and used inside an HSM (SoftHSM2 in tests).

(It also keeps the RSA keys of ARCA certificates, ``generate_rsa``/``sign_sha256_rsa``: one module,
one session pool and one lock for every use of the token, as PKCS#11 without mutexes requires.)

The private key never leaves the token: it is created there as a sensitive, non-extractable token
object whose CKA_ID (UTF-8 bytes) and CKA_LABEL are the key id, and the registry stores only the
public JWK. Signing hashes with SHA-256 here and asks the token for CKM_ECDSA over the digest,
because SoftHSM2 2.6 (and several real HSMs) do not offer CKM_ECDSA_SHA256; the result is the raw
r||s that JWS wants.

Concurrency: python-pkcs11 calls ``C_Initialize(NULL)``, which by the PKCS#11 specification
promises the library that no two threads call it at once (SoftHSM2 then disables its own mutexes).
So by default one logged-in session is shared and every call is serialised. ``max_sessions > 1``
opens a small pool of sessions used in parallel; only use it with a library that is thread-safe
regardless (most network HSM clients are), where it hides per-call latency.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.util.ec import encode_named_curve_parameters

from stalela.errors import Conflict
from stalela.fiscal.core.seal import public_jwk_from_public_key
from stalela.fiscal.signing.base import SIGNATURE_LENGTH, GeneratedKey, SigningError

T = TypeVar("T")

# Errors after which the session (or the cached key handle in it) cannot be trusted again. The
# operation is retried once on a fresh session: an HSM that restarted, or a key handle that went
# stale, should cost one retry rather than a failed invoice.
_BROKEN_SESSION = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.UserNotLoggedIn,
    p11e.KeyHandleInvalid,
    p11e.ObjectHandleInvalid,
)
_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_POINT_LENGTH = 65  # uncompressed: 0x04 || x || y


@dataclass(eq=False)
class _PooledSession:
    session: Any  # pkcs11.Session
    keys: dict[str, Any] = field(default_factory=dict)  # key_id -> pkcs11.PrivateKey


class Pkcs11KeyBackend:
    name = "pkcs11"

    def __init__(
        self, library_path: str, token_label: str, pin: str, *, max_sessions: int = 1
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self._library_path = library_path
        self._token_label = token_label
        self._pin = pin
        self._max_sessions = max_sessions
        self._token: Any = None
        self._idle: list[_PooledSession] = []
        self._live = 0
        self._cond = threading.Condition()

    def generate(self, key_id: str) -> GeneratedKey:
        # No retry: if the session broke after the token created the pair, a retry would only
        # report a misleading conflict.
        return self._run(
            lambda pooled: self._generate(pooled, key_id), f"generate key {key_id}", retry=False
        )

    def sign(self, key_id: str, private_ref: bytes | None, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        return self._run(lambda pooled: self._sign(pooled, key_id, digest), f"sign with {key_id}")

    def public_jwk(self, key_id: str) -> dict[str, Any]:
        """Re-derive a key's JWK from the token, e.g. to repair or audit the key registry."""
        return self._run(lambda pooled: self._public_jwk(pooled, key_id), f"read key {key_id}")

    # -- RSA keys (ARCA's WSAA certificates are RSA): generated, read and used inside the token -----

    def generate_rsa(self, label: str, bits: int = 2048) -> rsa.RSAPublicKey:
        """A new RSA key pair in the token (sensitive, never extractable); its public half."""
        return self._run(lambda pooled: self._generate_rsa(pooled, label, bits), f"generate RSA key {label}",
                         retry=False)

    def rsa_public_key(self, label: str) -> rsa.RSAPublicKey:
        return self._run(lambda pooled: _rsa_public(self._find_rsa(pooled, ObjectClass.PUBLIC_KEY, label)),
                         f"read RSA key {label}")

    def sign_sha256_rsa(self, label: str, data: bytes) -> bytes:
        """RSA PKCS#1 v1.5 over SHA-256(data), hashed by the token (CKM_SHA256_RSA_PKCS)."""
        def run(pooled: _PooledSession) -> bytes:
            key = pooled.keys.get(f"rsa:{label}")
            if key is None:
                key = pooled.keys[f"rsa:{label}"] = self._find_rsa(pooled, ObjectClass.PRIVATE_KEY, label)
            return key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
        return self._run(run, f"sign with RSA key {label}")

    def _generate_rsa(self, pooled: _PooledSession, label: str, bits: int) -> rsa.RSAPublicKey:
        session, kid = pooled.session, label.encode("utf-8")
        if list(session.get_objects({Attribute.ID: kid})):
            raise Conflict(f"key {label} already exists in the token", code="key_exists")
        public, private = session.generate_keypair(
            KeyType.RSA, bits, id=kid, label=label, store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={Attribute.TOKEN: True, Attribute.PRIVATE: False},
            private_template={
                Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
            },
        )
        pooled.keys[f"rsa:{label}"] = private
        return _rsa_public(public)

    @staticmethod
    def _find_rsa(pooled: _PooledSession, object_class: ObjectClass, label: str) -> Any:
        try:
            return pooled.session.get_key(object_class=object_class, key_type=KeyType.RSA, id=label.encode("utf-8"))
        except p11e.NoSuchKey:
            raise SigningError(f"RSA key {label} is not in the token") from None
        except p11e.MultipleObjectsReturned:
            raise SigningError(f"RSA key id {label} is ambiguous in the token") from None

    # -- AES keys (the tenant keys that wrap per-subject data keys): inside the token, never extractable

    def generate_aes(self, label: str) -> None:
        def run(pooled: _PooledSession) -> None:
            session, kid = pooled.session, label.encode("utf-8")
            if list(session.get_objects({Attribute.ID: kid})):
                raise Conflict(f"key {label} already exists in the token", code="key_exists")
            pooled.keys[f"aes:{label}"] = session.generate_key(
                KeyType.AES, 256, id=kid, label=label, store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                          Attribute.EXTRACTABLE: False})
        self._run(run, f"generate AES key {label}", retry=False)

    def aes_gcm(self, label: str, nonce: bytes, data: bytes, aad: bytes, *, encrypt: bool) -> bytes:
        """AES-256-GCM by the token (CKM_AES_GCM, 128-bit tag appended to the ciphertext)."""
        def run(pooled: _PooledSession) -> bytes:
            key = pooled.keys.get(f"aes:{label}")
            if key is None:
                key = pooled.keys[f"aes:{label}"] = self._find_aes(pooled, label)
            params = pkcs11.mechanisms.GCMParams(nonce, aad, 128)
            if encrypt:
                return key.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return key.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params)
        return self._run(run, f"use AES key {label}")

    def destroy_aes(self, label: str) -> bool:
        """Destroy the key object (C_DestroyObject); False when it was already gone (idempotent)."""
        def run(pooled: _PooledSession) -> bool:
            pooled.keys.pop(f"aes:{label}", None)
            try:
                key = self._find_aes(pooled, label)
            except SigningError:
                return False
            key.destroy()
            return True
        return self._run(run, f"destroy AES key {label}", retry=False)

    @staticmethod
    def _find_aes(pooled: _PooledSession, label: str) -> Any:
        try:
            return pooled.session.get_key(object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES,
                                          id=label.encode("utf-8"))
        except p11e.NoSuchKey:
            raise SigningError(f"AES key {label} is not in the token") from None

    def close(self) -> None:
        """Close idle sessions; sessions in use are returned to the pool and reused as before."""
        with self._cond:
            idle, self._idle = self._idle, []
            for pooled in idle:
                self._close_session(pooled)

    # -- operations, each run with exclusive use of one session ----------------------------------

    def _generate(self, pooled: _PooledSession, key_id: str) -> GeneratedKey:
        session = pooled.session
        kid = key_id.encode("utf-8")
        # Exhaust the search: an abandoned one leaves C_FindObjects active on the session.
        if list(session.get_objects({Attribute.ID: kid})):
            raise Conflict(f"key {key_id} already exists in the token", code="key_exists")
        public, private = session.generate_keypair(
            KeyType.EC,
            id=kid,
            label=key_id,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={
                Attribute.EC_PARAMS: _P256_PARAMS,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: False,
            },
            private_template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DERIVE: False,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
            },
        )
        pooled.keys[key_id] = private
        return GeneratedKey(public_jwk=_jwk(public, key_id), private_ref=None)

    def _sign(self, pooled: _PooledSession, key_id: str, digest: bytes) -> bytes:
        key = pooled.keys.get(key_id)
        if key is None:
            key = self._find(pooled, ObjectClass.PRIVATE_KEY, key_id)
            pooled.keys[key_id] = key
        signature = key.sign(digest, mechanism=Mechanism.ECDSA)
        if len(signature) != SIGNATURE_LENGTH:
            raise SigningError(f"key {key_id} is not a P-256 key ({len(signature)}-byte signature)")
        return signature

    def _public_jwk(self, pooled: _PooledSession, key_id: str) -> dict[str, Any]:
        return _jwk(self._find(pooled, ObjectClass.PUBLIC_KEY, key_id), key_id)

    @staticmethod
    def _find(pooled: _PooledSession, object_class: ObjectClass, key_id: str) -> Any:
        try:
            return pooled.session.get_key(
                object_class=object_class, key_type=KeyType.EC, id=key_id.encode("utf-8")
            )
        except p11e.NoSuchKey:
            raise SigningError(f"key {key_id} is not in the token") from None
        except p11e.MultipleObjectsReturned:
            raise SigningError(f"key id {key_id} is ambiguous in the token") from None

    # -- session pool ----------------------------------------------------------------------------

    def _run(
        self, operation: Callable[[_PooledSession], T], what: str, *, retry: bool = True
    ) -> T:
        attempts = 2 if retry else 1
        for attempt in range(1, attempts + 1):
            pooled = self._acquire()
            try:
                result = operation(pooled)
            except _BROKEN_SESSION as exc:
                self._discard(pooled)
                if attempt == attempts:
                    raise SigningError(f"HSM failed to {what}: {type(exc).__name__}") from exc
                continue
            except p11e.PKCS11Error as exc:
                self._release(pooled)
                raise SigningError(f"HSM failed to {what}: {type(exc).__name__}") from exc
            except BaseException:
                self._release(pooled)
                raise
            self._release(pooled)
            return result
        raise AssertionError("unreachable")

    def _acquire(self) -> _PooledSession:
        with self._cond:
            while not self._idle and self._live >= self._max_sessions:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            # Opening under the pool lock: it is rare, and the login decision below needs a
            # stable count of our open sessions.
            pooled = _PooledSession(self._open_session())
            self._live += 1
            return pooled

    def _release(self, pooled: _PooledSession) -> None:
        with self._cond:
            self._idle.append(pooled)
            self._cond.notify()

    def _discard(self, pooled: _PooledSession) -> None:
        with self._cond:
            self._close_session(pooled)
            self._cond.notify()

    def _close_session(self, pooled: _PooledSession) -> None:
        self._live -= 1
        try:
            pooled.session.close()
        except p11e.PKCS11Error:
            pass  # already gone on the token side; nothing left to release

    def _open_session(self) -> Any:
        try:
            if self._token is None:
                self._token = pkcs11.lib(self._library_path).get_token(
                    token_label=self._token_label
                )
            # The login state belongs to the application, not the session: while one of our
            # sessions is open the token is logged in, and logging in again is an error.
            if self._live == 0:
                try:
                    return self._token.open(rw=True, user_pin=self._pin)
                except p11e.UserAlreadyLoggedIn:
                    pass  # another component of this process holds a logged-in session
            return self._token.open(rw=True)
        except p11e.NoSuchToken:
            raise SigningError(f"no PKCS#11 token labelled {self._token_label!r}") from None
        except p11e.PinIncorrect:
            raise SigningError("the PKCS#11 PIN was refused") from None
        except (p11e.PKCS11Error, OSError, RuntimeError) as exc:
            self._token = None
            raise SigningError(f"cannot open a PKCS#11 session: {type(exc).__name__}") from exc


def _rsa_public(public: Any) -> rsa.RSAPublicKey:
    modulus = int.from_bytes(public[Attribute.MODULUS], "big")
    exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def _jwk(public: Any, key_id: str) -> dict[str, Any]:
    return public_jwk_from_public_key(_public_key_from_ec_point(public[Attribute.EC_POINT]), key_id)


def _public_key_from_ec_point(raw: bytes) -> ec.EllipticCurvePublicKey:
    # CKA_EC_POINT is specified as a DER OCTET STRING around the point, but some tokens return
    # the bare point; accept both for P-256 (the lengths cannot collide).
    if len(raw) == _POINT_LENGTH + 2 and raw[0] == 0x04 and raw[1] == _POINT_LENGTH:
        raw = raw[2:]
    if len(raw) != _POINT_LENGTH or raw[0] != 0x04:
        raise SigningError("the token returned an EC point that is not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
