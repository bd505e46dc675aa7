"""API models of operator accounts and the platform audit log."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from stalela.auth.endpoints import Email
from stalela.kit.schemas import StrictModel as _Strict

OperatorRole = Literal["platform_admin", "support"]


class StrictModel(_Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OperatorCreate(StrictModel):
    email: Email
    name: str = Field(min_length=1, max_length=200)
    role: OperatorRole
    password: str | None = Field(None, min_length=1, max_length=1024,
                                 description="Absent: the operator signs in through OpenID Connect only.")


class OperatorUpdate(StrictModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    role: OperatorRole | None = None
    status: Literal["active", "deactivated"] | None = None


class OperatorOut(StrictModel):
    id: str
    email: str
    name: str
    role: str
    status: str
    password: bool = Field(description="Whether the operator may sign in with a password.")
    oidc_issuer: str | None
    oidc_subject: str | None
    created_at: str
    updated_at: str


class OperatorPage(StrictModel):
    data: list[OperatorOut]
    has_more: bool


class PlatformAuditEntryOut(StrictModel):
    seq: int
    id: str
    at: str
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]
    ip: str | None
    prev_hash: str
    hash: str


class PlatformAuditPage(StrictModel):
    data: list[PlatformAuditEntryOut]
    has_more: bool
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class PlatformAuditVerification(StrictModel):
    checked: int
    valid: bool
    problem: str | None = Field(description="The first broken entry, named by its seq.")
