"""The device key: a P-256 key in a PEM file or in a PKCS#11 token, named by its RFC 7638 thumbprint.

Both sign the raw 64-byte r||s that JWS (ES256) and Stalela seals use. The private key never appears
in a log, a repr or an exception message.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import public_jwk_from_public_key


class DeviceKey(Protocol):
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (kty, crv, x, y, kid = thumbprint)."""

    def sign(self, data: bytes) -> bytes:
        """ES256 over ``data``: the raw 64-byte r||s."""

    @property
    def thumbprint(self) -> str: ...


class _P256Key:
    """What both kinds of key share: the public JWK, named by its thumbprint, from the public key alone."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey) -> None:
        jwk = public_jwk_from_public_key(public_key, "")
        self._jwk = core.device_public_jwk({k: jwk[k] for k in ("kty", "crv", "x", "y")})

    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)

    @property
    def thumbprint(self) -> str:
        return self._jwk["kid"]


class FileKey(_P256Key):
    """A software key in a PEM file (PKCS#8, unencrypted unless ``password``), created mode 0600."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, path: Path | None = None) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("a device key is P-256")
        self._key = private_key
        self.path = path
        super().__init__(private_key.public_key())

    @classmethod
    def create(cls, path: str | Path, password: bytes | None = None) -> "FileKey":
        """A new key written to ``path`` (refuses to overwrite: a device's key is its identity)."""
        path = Path(path)
        key = ec.generate_private_key(ec.SECP256R1())
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        # O_EXCL + 0600 from the start: the key is never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        _fsync_directory(path.parent)  # the file's name too: after a power cut, the key is still found
        return cls(key, path)

    @classmethod
    def load(cls, path: str | Path, password: bytes | None = None) -> "FileKey":
        path = Path(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return cls(key, path)

    @classmethod
    def load_or_create(cls, path: str | Path, password: bytes | None = None) -> "FileKey":
        return cls.load(path, password) if Path(path).exists() else cls.create(path, password)

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __repr__(self) -> str:  # never the key itself
        return f"FileKey(kid={self.thumbprint!r}, path={str(self.path) if self.path else None!r})"


class Pkcs11Key(_P256Key):
    """A P-256 key inside a PKCS#11 token (an HSM, a smart card; SoftHSM2 in tests), found by label
    (created there, sensitive and non-extractable, when ``create=True`` and absent).

    Hashes with SHA-256 here and asks the token for CKM_ECDSA over the digest: SoftHSM2 2.6 and several
    tokens lack CKM_ECDSA_SHA256. PKCS#11 returns r||s already. One session, calls serialised (a library
    initialised without mutexes must not be called from two threads at once)."""

    def __init__(self, library_path: str, token_label: str, pin: str, key_label: str, *,
                 create: bool = True) -> None:
        import pkcs11  # optional dependency: only a device with a token needs python-pkcs11
        from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
        from pkcs11.util.ec import encode_named_curve_parameters

        self._lock = threading.Lock()
        self._token = pkcs11.lib(library_path).get_token(token_label=token_label)
        try:
            self._session = self._token.open(user_pin=pin, rw=True)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            # PKCS#11 logs in per application, not per session: another session of this process did.
            self._session = self._token.open(rw=True)
        label = key_label
        found = list(self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label,
                                                Attribute.KEY_TYPE: KeyType.EC}))
        if found:
            self._private = found[0]
            public = self._session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC, label=label)
        elif create:
            public, self._private = self._session.generate_keypair(
                KeyType.EC, id=label.encode("utf-8"), label=label, store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template={Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
                                 Attribute.TOKEN: True, Attribute.PRIVATE: False},
                private_template={Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                                  Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DERIVE: False})
        else:
            raise LookupError(f"no EC key labelled {label!r} in token {token_label!r}")
        point = _ec_point(public[Attribute.EC_POINT])
        super().__init__(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point))
        self.label = label

    def sign(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        digest = hashlib.sha256(data).digest()
        with self._lock:
            signature = self._private.sign(digest, mechanism=Mechanism.ECDSA)
        if len(signature) != 64:
            raise ValueError(f"the token returned a {len(signature)}-byte ECDSA signature, not r||s")
        return signature

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Key(kid={self.thumbprint!r}, label={self.label!r})"


def _fsync_directory(directory: Path) -> None:
    """Make a new entry of ``directory`` durable (POSIX: fsync the directory itself). Windows cannot open a
    directory this way; NTFS journals its metadata."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ec_point(value: bytes) -> bytes:
    """CKA_EC_POINT is the point wrapped in a DER OCTET STRING (most tokens): unwrap it."""
    if len(value) == 67 and value[0] == 0x04 and value[1] == 65:
        return value[2:]
    if len(value) == 65 and value[0] == 0x04:
        return value
    raise ValueError("unexpected CKA_EC_POINT encoding")
