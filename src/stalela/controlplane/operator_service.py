"""Operator accounts: creation and changes, password and OpenID Connect sign-in, console sessions.

Every change and every sign-in (and failed one) is appended to the platform audit log in the same
transaction. Services flush, never commit.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit import platform as platform_audit
from stalela.auth import passwords
from stalela.auth.users import normalize_email
from stalela.config import Settings
from stalela.controlplane.operator_models import OperatorSession, OperatorUser
from stalela.controlplane.operator_repository import OperatorRepository, OperatorSessionRepository
from stalela.controlplane.service import checked_locale
from stalela.db.base import utcnow
from stalela.errors import Conflict, NotFound, ValidationFailed
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id

ROLES = ("platform_admin", "support")
STATUSES = ("active", "deactivated")
SESSION_PREFIX = "ops_"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # the API's rule (auth.endpoints.Email)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def view(op: OperatorUser) -> dict[str, Any]:
    return {"id": op.id, "email": op.email, "name": op.name, "role": op.role, "status": op.status,
            "password": op.password_hash is not None, "oidc_issuer": op.oidc_issuer, "oidc_subject": op.oidc_subject,
            "locale": op.locale, "created_at": rfc3339(op.created_at), "updated_at": rfc3339(op.updated_at)}


def _check_identity(email: str, name: str) -> str:
    """The API's schema checks these; the console and the command line come through here only."""
    email = normalize_email(email)
    if not EMAIL.fullmatch(email) or len(email) > 254:
        raise ValidationFailed("not an e-mail address (at most 254 characters)", code="invalid_email", field="email")
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("a name of 1 to 200 characters", code="invalid_name", field="name")
    return email


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"unknown role; one of {', '.join(ROLES)}", code="invalid_role", field="role")


async def create_operator(session: AsyncSession, settings: Settings, actor: str, *, email: str, name: str, role: str,
                          password: str | None, ip: str | None = None) -> OperatorUser:
    """``password`` None: the operator signs in through OpenID Connect only."""
    email = _check_identity(email, name)
    _check_role(role)
    if password is not None:
        passwords.check_policy(settings, password)
    now = utcnow()
    op = OperatorUser(id=new_id("opr"), email=email, name=name.strip(), role=role, status="active",
                      password_hash=passwords.hash_password(settings, password) if password is not None else None,
                      created_at=now, updated_at=now)
    try:
        async with session.begin_nested():
            await OperatorRepository(session).add(op)
    except IntegrityError:
        raise Conflict("an operator with this email exists", code="operator_email_taken", field="email") from None
    await platform_audit.record(session, actor, "operator.created", op.id,
                                {"role": role, "password": password is not None}, ip=ip)
    return op


async def get_operator(session: AsyncSession, operator_id: str) -> OperatorUser:
    op = await OperatorRepository(session).get(operator_id)
    if op is None:
        raise NotFound("no such operator", code="operator_not_found")
    return op


async def list_operators(session: AsyncSession, *, role: str | None = None, status: str | None = None,
                         limit: int = 50, starting_after: str | None = None) -> tuple[list[OperatorUser], bool]:
    return await OperatorRepository(session).filtered_page(role=role, status=status, limit=limit,
                                                           starting_after=starting_after)


async def update_operator(session: AsyncSession, actor: str, operator_id: str, changes: dict[str, Any], *,
                          ip: str | None = None) -> OperatorUser:
    """Changes role, status, name or language (``locale``); a deactivation ends the operator's sessions at
    once. ``locale`` None is a change (back to the browser's language); for the others None changes nothing."""
    changes = {k: v for k, v in changes.items() if v is not None or k == "locale"}
    if "locale" in changes:
        checked_locale(changes["locale"])
    op = await get_operator(session, operator_id)
    if "role" in changes:
        _check_role(changes["role"])
    if changes.get("status") not in (None, *STATUSES):
        raise ValidationFailed(f"status: one of {', '.join(STATUSES)}", code="invalid_status", field="status")
    if actor == f"operator:{op.id}" and (changes.get("status") == "deactivated"
                                        or changes.get("role", op.role) != op.role):
        # The last admin locking themself out would leave only the static token to recover with.
        raise Conflict("you cannot deactivate yourself or change your own role", code="operator_self_change")
    for name in ("role", "status", "name", "locale"):
        if name in changes:
            setattr(op, name, changes[name])
    op.updated_at = utcnow()
    if op.status == "deactivated":
        await OperatorSessionRepository(session).revoke(operator_id=op.id, now=utcnow())
    await session.flush()
    await platform_audit.record(session, actor, "operator.updated", op.id,
                                {k: (v if k != "name" else "changed") for k, v in changes.items()}, ip=ip)
    return op


# --- sign-in -------------------------------------------------------------------------------------


async def password_login(session: AsyncSession, settings: Settings, email: str, password: str,
                         ip: str | None) -> OperatorUser | None:
    """The operator, or None for a wrong e-mail or password (failures are audited: the caller commits
    even though it answers 401)."""
    op = await OperatorRepository(session).by_email(normalize_email(email))
    if op is None or op.status != "active" or op.password_hash is None:
        passwords.burn_time(settings)  # an unknown e-mail costs the time of a wrong password
        await platform_audit.record(session, "anonymous", "operator.login_failed", op.id if op else None, ip=ip)
        return None
    ok, rehash = passwords.verify_password(settings, op.password_hash, password)
    if not ok:
        await platform_audit.record(session, f"operator:{op.id}", "operator.login_failed", op.id, ip=ip)
        return None
    if rehash:
        op.password_hash = rehash
    return op


async def record_lockout(session: AsyncSession, email: str, ip: str | None) -> None:
    op = await OperatorRepository(session).by_email(normalize_email(email))
    await platform_audit.record(session, "anonymous", "operator.login_locked", op.id if op else None, ip=ip)


async def oidc_operator(session: AsyncSession, issuer: str, claims: dict[str, Any],
                        ip: str | None) -> OperatorUser | None:
    """The operator a verified ID token names: by its stored (issuer, subject), else by a verified e-mail
    (linking the subject on first use). Nobody is ever created here: an identity the provider vouches
    for gets no access to the platform until an admin has made its operator account."""
    repo, subject = OperatorRepository(session), str(claims["sub"])
    op = await repo.by_subject(issuer, subject)
    if op is None and claims.get("email") and claims.get("email_verified") is True:
        op = await repo.by_email(normalize_email(str(claims["email"])))
        if op is not None and op.oidc_subject is not None:
            op = None  # already linked to another identity: an e-mail must not take it over
    if op is None or op.status != "active":  # refused; audited, so the caller commits and answers 403
        await platform_audit.record(session, "anonymous", "operator.login_failed", op.id if op else None,
                                    {"method": "oidc", "code": "oidc_not_an_operator"}, ip=ip)
        return None
    if op.oidc_subject is None:
        op.oidc_issuer, op.oidc_subject, op.updated_at = issuer, subject, utcnow()
        await platform_audit.record(session, f"operator:{op.id}", "operator.oidc_linked", op.id, ip=ip)
    return op


async def start_session(session: AsyncSession, op: OperatorUser, method: str, lifetime: timedelta,
                        ip: str | None) -> str:
    """A new console session; returns its token (the cookie's value, never stored)."""
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.add(OperatorSession(id=new_id("ops"), operator_id=op.id, token_hash=_hash(token), method=method,
                                created_at=now, expires_at=now + lifetime))
    await platform_audit.record(session, f"operator:{op.id}", "operator.login", op.id, {"method": method}, ip=ip)
    await session.flush()
    return token


async def session_operator(session: AsyncSession, token: str) -> OperatorUser | None:
    found = await OperatorSessionRepository(session).live(_hash(token), utcnow())
    return found[1] if found else None


async def end_session(session: AsyncSession, op: OperatorUser, token: str, ip: str | None) -> None:
    await OperatorSessionRepository(session).revoke(token_hash=_hash(token), now=utcnow())
    await platform_audit.record(session, f"operator:{op.id}", "operator.logout", op.id, ip=ip)
