"""Signing backends: where private keys live and how they sign (ES256, raw r||s)."""
from stalela.fiscal.signing.base import GeneratedKey, KeyBackend, SigningError
from stalela.fiscal.signing.keystore import (
    SoftwareKeyBackend,
    load_or_create_master_key,
    parse_master_key,
)
from stalela.fiscal.signing.pkcs11 import Pkcs11KeyBackend

__all__ = [
    "GeneratedKey",
    "KeyBackend",
    "Pkcs11KeyBackend",
    "SigningError",
    "SoftwareKeyBackend",
    "load_or_create_master_key",
    "parse_master_key",
]
