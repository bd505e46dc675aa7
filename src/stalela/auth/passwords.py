"""Passwords: Argon2id (argon2-cffi) with parameters from settings, rehashed on login when they change."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from stalela.config import Settings
from stalela.errors import ValidationFailed

_COMMON = Path(__file__).with_name("common-passwords.txt")


@lru_cache(maxsize=4)
def hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def _hasher(settings: Settings) -> PasswordHasher:
    return hasher(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    return frozenset(line.strip().lower() for line in _COMMON.read_text().splitlines() if line.strip())


def check_policy(settings: Settings, password: str, field: str = "password") -> None:
    if len(password) < settings.password_min_length:
        raise ValidationFailed(f"at least {settings.password_min_length} characters", code="password_too_short",
                               field=field)
    if len(password) > 1024:
        raise ValidationFailed("at most 1024 characters", code="password_too_long", field=field)
    if password.lower() in common_passwords():
        raise ValidationFailed("this password is too common", code="password_too_common", field=field)


def hash_password(settings: Settings, password: str) -> str:
    return _hasher(settings).hash(password)


def verify_password(settings: Settings, stored: str, password: str) -> tuple[bool, str | None]:
    """Returns (matches, new hash if the parameters changed since it was stored)."""
    ph = _hasher(settings)
    try:
        ph.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    return True, ph.hash(password) if ph.check_needs_rehash(stored) else None


@lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return hasher(time_cost, memory_kib, parallelism).hash("no such user")


def burn_time(settings: Settings) -> None:
    """Verify against a dummy hash, so an unknown email costs the same time as a wrong password."""
    params = (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    try:
        hasher(*params).verify(_dummy_hash(*params), "wrong")
    except VerifyMismatchError:
        pass
