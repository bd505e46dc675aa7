"""API models of operator accounts and the platform audit log."""
from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from stalela.auth.endpoints import Email
from stalela.controlplane.schemas import locale_field
from stalela.kit.schemas import StrictModel as _Strict
from stalela.privacy.export_schemas import AuditEventRecord

OperatorRole = Literal["platform_admin", "support"]


class StrictModel(_Strict):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OperatorCreate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "ops@example.com", "name": "Nadia", "role": "support", "password": "a long operator passphrase"},
    ]})
    email: Email
    name: str = Field(min_length=1, max_length=200)
    role: OperatorRole
    password: str | None = Field(None, min_length=1, max_length=1024,
                                 description="Absent: the operator signs in through OpenID Connect only.")


OPERATOR_LOCALE = ("The language of the operator's console: fr, es or en; null: the browser's "
                   "(Accept-Language).")


class OperatorUpdate(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "platform_admin"}, {"locale": "fr"}, {"locale": None},
                                                              {"role": "support", "status": "deactivated"}]})
    name: str | None = Field(None, min_length=1, max_length=200)
    role: OperatorRole | None = None
    status: Literal["active", "deactivated"] | None = None
    locale: str | None = locale_field(OPERATOR_LOCALE)


class OperatorOut(StrictModel):
    id: str
    email: str
    name: str
    role: str
    status: str
    password: bool = Field(description="Whether the operator may sign in with a password.")
    oidc_issuer: str | None
    oidc_subject: str | None
    locale: str | None = Field(description=OPERATOR_LOCALE)
    created_at: str
    updated_at: str


class OperatorPage(StrictModel):
    data: list[OperatorOut]
    has_more: bool


class PlatformAuditPage(StrictModel):
    data: list[AuditEventRecord]  # the same entry as the tenants' audit log
    has_more: bool
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class PlatformAuditVerification(StrictModel):
    checked: int
    valid: bool
    problem: str | None = Field(description="The first broken entry, named by its seq.")
