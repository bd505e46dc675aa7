"""The 32-byte master key: parsed from settings or read from (and on first use created as) a 0600 file.

It lives in the kit, below every domain, because two domains need it for different things: the
software key store encrypts signing keys under it (``fiscal.signing.keystore``) and ``kit.secretbox``
encrypts small secrets (DGI device tokens, token-signing keys) under it.
"""
from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from pathlib import Path

from stalela.config import Settings

MASTER_KEY_LENGTH = 32
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def master_key(settings: Settings) -> bytes:
    """``STALELA_MASTER_KEY`` when set, else the key file (created on first use)."""
    if settings.master_key is not None:
        return parse_master_key(settings.master_key.get_secret_value())
    return load_or_create_master_key(settings.effective_master_key_file)


def parse_master_key(text: str) -> bytes:
    """A master key given in settings: 64 hex digits, or base64 / base64url of 32 bytes."""
    text = text.strip()
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    compact = text.rstrip("=")
    try:
        key = base64.b64decode(
            compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != MASTER_KEY_LENGTH:
        raise ValueError(
            f"the master key must be {MASTER_KEY_LENGTH} bytes given as 64 hex digits or base64"
        )
    return key


def load_or_create_master_key(path: Path) -> bytes:
    """Read the master key file, creating it (mode 0600, 32 random bytes) on first use.

    Creation writes a private temporary file and hard-links it into place: the link fails if the
    name exists, so two processes starting together agree on one key and no reader ever sees a
    half-written file. Losing this file loses every software key, which is why it is never
    overwritten.
    """
    path = Path(path)
    try:
        return _read_master_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(MASTER_KEY_LENGTH))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; use its key
        else:
            _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_master_key(path)


def _read_master_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) == MASTER_KEY_LENGTH:
        return data
    # Also accept a hand-written file holding the key as hex or base64 text.
    try:
        return parse_master_key(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(
            f"{path} does not hold a {MASTER_KEY_LENGTH}-byte master key "
            f"(found {len(data)} bytes); refusing to replace it"
        ) from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
