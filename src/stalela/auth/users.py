"""Users, invitations and sessions (login, refresh with rotation and reuse detection, logout)."""
from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.audit.service import record
from stalela.auth import passwords, tokens
from stalela.auth.models import Invitation, RefreshToken, User
from stalela.auth.permissions import ROLES, check_not_exceeding, check_writable
from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.base import utcnow
from stalela.db.session import Database
from stalela.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from stalela.i18n import LANGUAGES
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from stalela.kit.pseudonyms import pseudonym
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.tenancy.models import Outlet, Tenant
from stalela.tenancy.repository import TenantRepository


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "tenant_id": user.tenant_id, "email": user.email, "name": user.name, "role": user.role,
            "status": user.status, "outlet_ids": json.loads(user.outlet_ids), "locale": user.locale,
            "created_at": rfc3339(user.created_at), "updated_at": rfc3339(user.updated_at)}


async def active_user(session: AsyncSession, tenant_id: str, user_id: str) -> tuple[User, Tenant]:
    row = (await session.execute(select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id)
                                 .where(User.tenant_id == tenant_id, User.id == user_id))).first()
    if row is None or row[0].status != "active" or row[1].status == "deleted":
        raise Unauthorized("this user cannot sign in", code="invalid_token")
    return row[0], row[1]


async def _check_role_change(session: AsyncSession, actor: Principal, role: str, outlet_ids: list[str]) -> None:
    if role not in ROLES:
        raise ValidationFailed(f"unknown role; one of {', '.join(ROLES)}", code="invalid_role", field="role")
    # Never more than the caller may do: a role is granted (by creation, invitation or change) only by
    # a caller who may do everything it carries. Checking ownership alone let a key with the `admin`
    # scope (ownership, but not invoices:write...) make an owner, sign in as it and mint a key with
    # every scope.
    check_not_exceeding(actor, ROLES[role], f"the role {role}", field="role")
    for outlet_id in outlet_ids:
        if (await session.execute(select(Outlet.id).where(Outlet.id == outlet_id))).first() is None:
            raise ValidationFailed("no such outlet", code="outlet_not_found", field="outlet_ids")


async def create_user(session: AsyncSession, settings: Settings, actor: Principal, tenant_id: str, *, email: str,
                      name: str, role: str, password: str, outlet_ids: list[str] | None = None) -> User:
    outlet_ids = outlet_ids or []
    await _check_role_change(session, actor, role, outlet_ids)
    passwords.check_policy(settings, password)
    now = utcnow()
    user = User(tenant_id=tenant_id, id=new_id("usr"), email=normalize_email(email), name=name, role=role,
                status="active", password_hash=passwords.hash_password(settings, password),
                outlet_ids=json.dumps(sorted(outlet_ids)), created_at=now, updated_at=now)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise Conflict("a user with this email exists in this tenant", code="email_taken", field="email") from None
    # The audit log names people by pseudonym only: it is hash-chained, so a value in it could never be erased.
    await record(session, tenant_id, actor.actor, "user.created", user.id,
                 {"email_pseudonym": pseudonym(settings, tenant_id, "email", user.email), "role": role})
    return user


async def update_user(session: AsyncSession, actor: Principal, user_id: str, changes: dict[str, Any]) -> User:
    user = (await session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()
    if user is None:
        raise NotFound("no such user", code="user_not_found")
    # Changing or deactivating a user (which ends its sessions) is for callers who may do all it may.
    check_not_exceeding(actor, ROLES.get(user.role, frozenset()), "this user")
    role = changes.get("role", user.role)
    outlets = changes.get("outlet_ids", json.loads(user.outlet_ids))
    await _check_role_change(session, actor, role, outlets)
    for name in ("role", "status", "name"):
        if changes.get(name) is not None:
            setattr(user, name, changes[name])
    user.outlet_ids = json.dumps(sorted(outlets))
    user.updated_at = utcnow()
    if user.status == "deactivated":  # every session of a deactivated user ends now
        await session.execute(update(RefreshToken).where(RefreshToken.user_id == user.id,
                                                         RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
    await record(session, user.tenant_id, actor.actor, "user.updated", user.id,  # a new name is not logged, only that it changed
                 {k: (v if k != "name" else "changed") for k, v in changes.items() if v is not None})
    await session.flush()
    return user


async def me(session: AsyncSession, actor: Principal) -> User:
    if actor.kind != "user" or not actor.user_id:
        raise Forbidden("an API key has no user: sign in as a user", code="not_a_user")
    user = (await session.execute(select(User).where(User.id == actor.user_id))).scalar_one_or_none()
    if user is None:
        raise NotFound("no such user", code="user_not_found")
    return user


async def set_locale(session: AsyncSession, actor: Principal, locale: str | None) -> User:
    """A user's own language (``None``: the organisation's default). Only a shipped language."""
    user = await me(session, actor)
    if locale is not None and locale not in LANGUAGES:
        raise ValidationFailed(f"locale: one of {', '.join(LANGUAGES)}, or null for the organisation's default",
                               code="invalid_locale", field="locale")
    user.locale = locale
    user.updated_at = utcnow()
    await session.flush()
    return user


async def invite(session: AsyncSession, settings: Settings, actor: Principal, *, email: str, name: str, role: str,
                 outlet_ids: list[str] | None = None) -> tuple[Invitation, str]:
    await _check_role_change(session, actor, role, outlet_ids or [])
    token = "inv_" + secrets.token_urlsafe(32)
    inv = Invitation(tenant_id=actor.tenant_id, id=new_id("ivt"), email=normalize_email(email), name=name, role=role,
                     outlet_ids=json.dumps(sorted(outlet_ids or [])), token_hash=_hash(token),
                     invited_by=actor.user_id, created_at=utcnow(),
                     expires_at=utcnow() + timedelta(days=settings.invitation_days))
    session.add(inv)
    await record(session, actor.tenant_id, actor.actor, "user.invited", inv.id,
                 {"email_pseudonym": pseudonym(settings, actor.tenant_id, "email", inv.email), "role": role})
    await session.flush()
    return inv, token


async def accept(session: AsyncSession, settings: Settings, token: str, password: str) -> User:
    """Public: the invitation token is the credential. Single use, expiring."""
    await bind_platform(session)
    inv = (await session.execute(select(Invitation).where(Invitation.token_hash == _hash(token))
                                 .with_for_update())).scalar_one_or_none()
    if inv is None or inv.used_at is not None or inv.expires_at <= utcnow():
        raise ValidationFailed("this invitation is invalid, used or expired", code="invitation_invalid", field="token")
    await bind_tenant(session, inv.tenant_id)
    tenant = await TenantRepository(session).get(inv.tenant_id)
    # The invitation is a credential for one write, the new user: admitted like any other write (a
    # suspended tenant gains no user), with the role the inviter was allowed to grant when inviting.
    inviter = Principal(kind="user", tenant_id=inv.tenant_id, user_id=inv.invited_by, role="owner",
                        tenant_status=tenant.status)
    check_writable(inviter)
    inv.used_at = utcnow()
    return await create_user(session, settings, inviter, inv.tenant_id, email=inv.email, name=inv.name,
                             role=inv.role, password=password, outlet_ids=json.loads(inv.outlet_ids))


# --- sessions ------------------------------------------------------------------------------------


async def _new_refresh(session: AsyncSession, settings: Settings, user: User, family_id: str) -> str:
    token = "rt_" + secrets.token_urlsafe(32)
    session.add(RefreshToken(tenant_id=user.tenant_id, id=new_id("rtk"), user_id=user.id, family_id=family_id,
                             token_hash=_hash(token), created_at=utcnow(),
                             expires_at=utcnow() + timedelta(days=settings.refresh_token_days)))
    return token


async def _tokens(db: Database, settings: Settings, session: AsyncSession, user: User, family: str) -> dict:
    refresh = await _new_refresh(session, settings, user, family)
    access, ttl = await tokens.issue_access_token(db, settings, user_id=user.id, tenant_id=user.tenant_id,
                                                  role=user.role, email=user.email)
    return {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh,
            "refresh_expires_in": settings.refresh_token_days * 86400,
            "user": user_view(user)}


async def candidates(session: AsyncSession, email: str, tenant_id: str | None) -> list[tuple[User, Tenant]]:
    await bind_platform(session)
    stmt = (select(User, Tenant).join(Tenant, Tenant.id == User.tenant_id)
            .where(User.email == normalize_email(email), User.status == "active",
                   Tenant.status.in_(("active", "suspended", "deprovisioning"))))
    if tenant_id:
        stmt = stmt.where(User.tenant_id == tenant_id)
    return [(u, t) for u, t in await session.execute(stmt)]


async def login(db: Database, settings: Settings, session: AsyncSession, email: str, password: str,
                tenant_id: str | None, ip: str | None) -> tuple[dict | None, list[tuple[User, Tenant]]]:
    """Returns (tokens, []) on success, (None, matching users) when the tenant is ambiguous,
    (None, []) on bad credentials (the caller audits failures in their own transaction)."""
    found = await candidates(session, email, tenant_id)
    if not found:
        passwords.burn_time(settings)
        return None, []
    matching = []
    for user, tenant in found:
        ok, rehash = passwords.verify_password(settings, user.password_hash, password)
        if ok:
            if rehash:
                user.password_hash = rehash
            matching.append((user, tenant))
    if len(matching) > 1:
        return None, matching
    if not matching:
        for user, tenant in found:  # committed by the caller although the answer is a 401
            await bind_tenant(session, tenant.id)
            await record(session, tenant.id, f"user:{user.id}", "auth.login_failed", user.id, ip=ip)
        return None, []
    user, _ = matching[0]
    await bind_tenant(session, user.tenant_id)
    await record(session, user.tenant_id, f"user:{user.id}", "auth.login", user.id, ip=ip)
    return await _tokens(db, settings, session, user, new_id("fam")), []


async def refresh(db: Database, settings: Settings, session: AsyncSession, token: str, ip: str | None) -> dict:
    await bind_platform(session)
    row = (await session.execute(select(RefreshToken).where(RefreshToken.token_hash == _hash(token))
                                 .with_for_update())).scalar_one_or_none()
    if row is None:
        raise Unauthorized("invalid refresh token", code="invalid_token")
    await bind_tenant(session, row.tenant_id)
    if row.used_at is not None or row.revoked_at is not None:
        # A refresh token is used once. Seeing it again means it was stolen (or replayed): end the family.
        await session.execute(update(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                                         RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        await record(session, row.tenant_id, f"user:{row.user_id}", "auth.refresh_reuse_detected", row.user_id,
                     {"family_id": row.family_id}, ip=ip)
        return {"reused": True}
    if row.expires_at <= utcnow():
        raise Unauthorized("the refresh token expired; sign in again", code="token_expired")
    user, _ = await active_user(session, row.tenant_id, row.user_id)
    row.used_at = utcnow()
    return await _tokens(db, settings, session, user, row.family_id)


async def logout(session: AsyncSession, token: str) -> None:
    await bind_platform(session)
    row = (await session.execute(select(RefreshToken).where(RefreshToken.token_hash == _hash(token)))).scalar_one_or_none()
    if row is None:
        return
    await bind_tenant(session, row.tenant_id)
    await session.execute(update(RefreshToken).where(RefreshToken.family_id == row.family_id,
                                                     RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
    await record(session, row.tenant_id, f"user:{row.user_id}", "auth.logout", row.user_id)
