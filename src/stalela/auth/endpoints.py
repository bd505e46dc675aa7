"""Users, invitations and sessions over HTTP."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from stalela.auth import tokens, users
from stalela.auth.dependencies import Allow, AppSettings, DbSession, PublicRateLimit, client_ip
from stalela.auth.models import User
from stalela.auth.permissions import Perm
from stalela.auth.principal import Principal
from stalela.db.repository import Repository
from stalela.errors import Conflict, NotFound, TooManyRequests, Unauthorized
from stalela.kit.problems import problem_response
from stalela.kit.pagination import PageParams, page_params
from stalela.kit.schemas import PathId, StrictModel
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, prefix="/v1", tags=["users"])
EMAIL_MAX = 254  # the users' and invitations' email column


def _fits_once_normalized(value: str) -> str:
    # Stored lowercased, and lowercasing can lengthen text ("İ" becomes two characters): the bound must
    # hold for what is stored, or PostgreSQL refuses it after validation (a 500).
    if len(users.normalize_email(value)) > EMAIL_MAX:
        raise PydanticCustomError("string_too_long", "String should have at most {max_length} characters once "
                                  "lowercased", {"max_length": EMAIL_MAX})
    return value


Email = Annotated[str, Field(min_length=3, max_length=EMAIL_MAX, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
                  AfterValidator(_fits_once_normalized)]
Role = Literal["owner", "admin", "accountant", "cashier", "auditor"]
OutletIds = Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]], Field(max_length=200)]


class LoginIn(StrictModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    tenant_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class RefreshIn(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class UserCreate(StrictModel):
    email: Email
    name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str = Field(min_length=1, max_length=1024)
    outlet_ids: OutletIds = []


class InvitationCreate(StrictModel):
    email: Email
    name: str = Field(min_length=1, max_length=200)
    role: Role
    outlet_ids: OutletIds = []


class AcceptIn(StrictModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class UserUpdate(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    role: Role | None = None
    status: Literal["active", "deactivated"] | None = None
    outlet_ids: OutletIds | None = None


class MeUpdate(StrictModel):
    locale: str | None = Field(None, max_length=8, description="fr, es or en; null: the organisation's default",
                               examples=["fr"])


def _ip(request: Request) -> str:
    return client_ip(request) or "unknown"


@router.post("/auth/login", tags=["auth"], dependencies=[PublicRateLimit], responses={
    401: {"description": "invalid_credentials"}, 429: {"description": "login_throttled, rate_limited"}})
async def login(body: LoginIn, request: Request, session: DbSession, settings: AppSettings):
    """Email + password (+ tenant_id when the email exists in several tenants) → access and refresh tokens."""
    limiter = request.app.state.limiter
    keys = [f"login:acct:{users.normalize_email(body.email)}", f"login:ip:{_ip(request)}"]
    for key in keys:
        if await limiter.failures(key) >= settings.login_max_failures:
            raise TooManyRequests("too many failed sign-ins; try again later", code="login_throttled",
                                  headers={"Retry-After": str(settings.login_window_seconds)})
    result, ambiguous = await users.login(request.app.state.db, settings, session, body.email, body.password,
                                          body.tenant_id, _ip(request))
    if ambiguous:
        return problem_response(Conflict("this email belongs to several tenants: give tenant_id",
                                         code="tenant_required", field="tenant_id",
                                         extra={"tenants": [{"tenant_id": t.id, "name": t.name} for _, t in ambiguous]}),
                                request)
    if result is None:
        for key in keys:
            await limiter.fail(key)
        # Same answer for unknown emails and wrong passwords; the 401 still commits the audit entries.
        return problem_response(Unauthorized("wrong email or password", code="invalid_credentials"), request)
    await limiter.clear(keys[0])
    return result


@router.post("/auth/refresh", tags=["auth"], dependencies=[PublicRateLimit], responses={
    401: {"description": "invalid_credentials, token_expired, refresh_token_reused"}})
async def refresh(body: RefreshIn, request: Request, session: DbSession, settings: AppSettings):
    """Rotate: the presented refresh token dies; presenting a dead one revokes its whole family."""
    result = await users.refresh(request.app.state.db, settings, session, body.refresh_token, _ip(request))
    if result.get("reused"):
        return problem_response(Unauthorized("this refresh token was already used; the session is revoked",
                                             code="refresh_token_reused"), request)
    return result


@router.post("/auth/logout", tags=["auth"], status_code=204, dependencies=[PublicRateLimit])
async def logout(body: RefreshIn, session: DbSession):
    await users.logout(session, body.refresh_token)


# It reads the keys from the database (cached a few minutes), without the request session that would
# document the 503 of an outage for it.
@router.get("/auth/jwks.json", tags=["auth"], dependencies=[PublicRateLimit], responses={503: {"description": "database_unavailable"}})
async def auth_jwks(request: Request, settings: AppSettings):
    """Public keys of the access tokens (RS256), retired ones included until their tokens expire."""
    return await tokens.jwks(request.app.state.db, settings)


@router.post("/users", status_code=201, responses={409: {"description": "email_taken"}})
async def create_user(body: UserCreate, session: DbSession, settings: AppSettings,
                      principal: Annotated[Principal, Allow(Perm.ADMIN)]):
    user = await users.create_user(session, settings, principal, principal.tenant_id, email=body.email,
                                   name=body.name, role=body.role, password=body.password, outlet_ids=body.outlet_ids)
    return users.user_view(user)


class _Users(Repository[User]):
    model = User


@router.get("/users")
async def list_users(session: DbSession, principal: Annotated[Principal, Allow(Perm.ADMIN)],
                     paging: Annotated[PageParams, Depends(page_params)]):
    rows, more = await _Users(session).page(None, limit=paging.limit, starting_after=paging.starting_after)
    return {"data": [users.user_view(u) for u in rows], "has_more": more}


# Before /users/{user_id}: "me" is a valid id's shape. Every role reads its own record and chooses its own
# language: the one permission all of them have (OUTLETS_READ) is the declaration.
@router.get("/users/me", responses={403: {"description": "not_a_user (an API key has no user)"}})
async def get_me(session: DbSession, principal: Annotated[Principal, Allow(Perm.OUTLETS_READ)]):
    """The signed-in user, with ``locale``: the language they chose (null: the organisation's default)."""
    return users.user_view(await users.me(session, principal))


@router.patch("/users/me", responses={403: {"description": "not_a_user"}, 422: {"description": "invalid_locale"}})
async def update_me(body: MeUpdate, session: DbSession, principal: Annotated[Principal, Allow(Perm.OUTLETS_READ)]):
    """Choose your own language for the consoles and documents: ``{"locale": "es"}``; ``null`` returns to
    the organisation's default; a body without ``locale`` changes nothing."""
    if "locale" not in body.model_fields_set:
        return users.user_view(await users.me(session, principal))
    return users.user_view(await users.set_locale(session, principal, body.locale))


@router.get("/users/{user_id}")
async def get_user(user_id: PathId, session: DbSession, principal: Annotated[Principal, Allow(Perm.ADMIN)]):
    user = await _Users(session).get(user_id)
    if user is None:
        raise NotFound("no such user", code="user_not_found")
    return users.user_view(user)


@router.patch("/users/{user_id}")
async def update_user(user_id: PathId, body: UserUpdate, session: DbSession,
                      principal: Annotated[Principal, Allow(Perm.ADMIN)]):
    return users.user_view(await users.update_user(session, principal, user_id, body.model_dump(exclude_unset=True)))


@router.post("/users/invitations", status_code=201, responses={409: {"description": "email_taken"}})
async def invite(body: InvitationCreate, session: DbSession, settings: AppSettings,
                 principal: Annotated[Principal, Allow(Perm.ADMIN)]):
    """The token is shown once; send it to the person, who redeems it at POST /v1/users/accept."""
    inv, token = await users.invite(session, settings, principal, email=body.email, name=body.name, role=body.role,
                                    outlet_ids=body.outlet_ids)
    return {"id": inv.id, "email": inv.email, "role": inv.role, "expires_at": inv.expires_at.isoformat(),
            "token": token}


@router.post("/users/accept", status_code=201, dependencies=[PublicRateLimit], responses={
    403: {"description": "tenant_suspended: a suspended tenant gains no user"},
    409: {"description": "email_taken"}})
async def accept(body: AcceptIn, session: DbSession, settings: AppSettings):
    """Public: redeem an invitation with a password."""
    return users.user_view(await users.accept(session, settings, body.token, body.password))

