"""Signing backends: where private keys live and how they sign (ES256, raw r||s)."""
from stalela.fiscal.signing.base import GeneratedKey, KeyBackend, SigningError
from stalela.fiscal.signing.keystore import (
    SoftwareKeyBackend,
    load_or_create_master_key,
    parse_master_key,
)

__all__ = [
    "GeneratedKey",
    "KeyBackend",
    "Pkcs11KeyBackend",
    "SigningError",
    "SoftwareKeyBackend",
    "load_or_create_master_key",
    "parse_master_key",
]


def __getattr__(name: str):  # noqa: ANN202 - PEP 562
    # python-pkcs11 and asn1crypto cost every API worker ~60 ms at start-up (the restart time after a
    # crash, docs/operations.md); only the pkcs11 backend needs them, so they load with it.
    if name == "Pkcs11KeyBackend":
        from stalela.fiscal.signing.pkcs11 import Pkcs11KeyBackend

        return Pkcs11KeyBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
