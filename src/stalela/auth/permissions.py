"""Roles and scopes, checked in one place and declared per endpoint with ``Allow(perm)``.

A permission names what an endpoint does. Users get permissions from their role, API keys from their
scopes, the platform operator from its own list. Outlet restrictions (tills' keys, cashiers) are a
second, finer check done by the services on the objects they load (``Principal.can_use_outlet``).
"""
from __future__ import annotations

from enum import Enum

from stalela.auth.principal import Principal
from stalela.errors import Conflict, Forbidden


class Perm(str, Enum):
    OUTLETS_READ = "outlets:read"
    INVOICES_WRITE = "invoices:write"
    INVOICES_READ = "invoices:read"
    # Draft invoices from text and ask for their seal (assistants): never seals by itself. A key holding only
    # this and invoices:read (an assistant's key) seals nothing without a person's approval.
    INVOICES_DRAFT = "invoices:draft"
    # Approve a drafted invoice (assistants): a person's decision that a draft may be sealed as it is.
    INVOICES_APPROVE = "invoices:approve"
    REPORTS_WRITE = "reports:write"  # close a day, sign checkpoints
    REPORTS_READ = "reports:read"
    EXPORTS = "exports"  # audit exports
    WEBHOOKS = "webhooks"
    ADMIN = "admin"  # outlets, devices, API keys, users
    OWNERSHIP = "ownership"  # grant or revoke the owner role
    AUDIT_READ = "audit:read"
    PRIVACY = "privacy"  # file and follow data subjects' requests (erasure): the owner's decision
    RESTRICTED_READ = "restricted:read"  # read data restricted after erasure (GDPR Art. 18): auditors only
    USAGE_WRITE = "usage:write"  # record and void usage events (billing: an external meter's key)
    # Everything the platform bills the tenant for: usage events and daily aggregates, quotas, bills
    # (with their sealed invoices and PDFs), the period's estimate, cost anomalies.
    USAGE_READ = "usage:read"
    # Act on cost anomalies (acknowledge, dismiss): the tenant's administration, through the ``admin`` scope,
    # never the ``usage`` scope: an anomaly questions the figures, and the meter's key that sent them must
    # not be the one to silence it.
    BILLING_MANAGE = "billing:manage"
    # Marketplace connections: their credentials, options, parked orders (docs/connectors.md).
    CONNECTORS = "connectors"


ROLES: dict[str, frozenset[Perm]] = {
    # Restricted data is kept only for the tax obligation: not even the owner reads it (Art. 18(2)).
    "owner": frozenset(Perm) - {Perm.RESTRICTED_READ},
    "admin": frozenset(Perm) - {Perm.OWNERSHIP, Perm.PRIVACY, Perm.RESTRICTED_READ},
    "accountant": frozenset({Perm.OUTLETS_READ, Perm.INVOICES_READ, Perm.REPORTS_READ, Perm.REPORTS_WRITE,
                             Perm.EXPORTS, Perm.USAGE_READ, Perm.BILLING_MANAGE}),
    "cashier": frozenset({Perm.OUTLETS_READ, Perm.INVOICES_WRITE, Perm.INVOICES_READ, Perm.INVOICES_DRAFT}),
    "auditor": frozenset({Perm.OUTLETS_READ, Perm.INVOICES_READ, Perm.REPORTS_READ, Perm.EXPORTS, Perm.AUDIT_READ,
                          Perm.RESTRICTED_READ, Perm.USAGE_READ}),
}

# API key scopes as documented to integrators, and what each one allows.
SCOPES: dict[str, frozenset[Perm]] = {
    "invoices:write": frozenset({Perm.INVOICES_WRITE, Perm.INVOICES_READ, Perm.OUTLETS_READ}),
    "invoices:read": frozenset({Perm.INVOICES_READ, Perm.OUTLETS_READ}),
    # An assistant's key (with invoices:read): drafts, and seals a draft only with a person's approval under the
    # approval or elicitation policy. Not in invoices:write: a key that seals directly is not an assistant's.
    "invoices:draft": frozenset({Perm.INVOICES_DRAFT, Perm.OUTLETS_READ}),
    # A person's approval app (not an agent's key): approves drafts (never those it drafted itself).
    "invoices:approve": frozenset({Perm.INVOICES_APPROVE, Perm.INVOICES_READ, Perm.OUTLETS_READ}),
    "reports": frozenset({Perm.REPORTS_READ, Perm.REPORTS_WRITE, Perm.EXPORTS, Perm.OUTLETS_READ}),
    "webhooks": frozenset({Perm.WEBHOOKS}),
    "connectors": frozenset({Perm.CONNECTORS, Perm.OUTLETS_READ}),
    "usage": frozenset({Perm.USAGE_WRITE, Perm.USAGE_READ}),
    # The tenant's first key has every scope: it is the tenant's root credential, hence OWNERSHIP.
    "admin": frozenset({Perm.ADMIN, Perm.OWNERSHIP, Perm.OUTLETS_READ, Perm.AUDIT_READ, Perm.PRIVACY,
                        Perm.BILLING_MANAGE}),
}
ALL_SCOPES = frozenset(SCOPES)
# Given only when asked for by name: a key created without scopes (the tenant's root key included) never
# approves drafts, so an agent holding an ordinary key cannot approve its own drafts (docs/assistants.md).
OPT_IN_SCOPES = frozenset({"invoices:approve"})
DEFAULT_SCOPES = ALL_SCOPES - OPT_IN_SCOPES


# What a till's key (restricted to one outlet) never does, whatever its scopes.
_TENANT_WIDE = frozenset({Perm.ADMIN, Perm.WEBHOOKS, Perm.CONNECTORS, Perm.OWNERSHIP, Perm.EXPORTS, Perm.AUDIT_READ, Perm.PRIVACY,
                          Perm.USAGE_WRITE, Perm.USAGE_READ, Perm.BILLING_MANAGE})


def permissions(principal: Principal) -> frozenset[Perm]:
    if principal.kind == "user":
        return ROLES.get(principal.role or "", frozenset())
    if principal.kind == "api_key":
        scopes = DEFAULT_SCOPES if principal.scopes is None else principal.scopes
        granted = frozenset().union(*(SCOPES.get(s, frozenset()) for s in scopes))
        return granted - _TENANT_WIDE if principal.outlet_id else granted
    if principal.kind == "operator":
        # Only reaches service-level checks (the CLI making a tenant's first owner): operator
        # credentials never pass the tenant endpoints' authentication.
        return frozenset({Perm.ADMIN, Perm.OWNERSHIP})
    return frozenset()


def key_permissions(scopes: frozenset[str] | None, restricted: bool) -> frozenset[Perm]:
    """What an API key with these scopes may do (the same rule as ``permissions``)."""
    granted = frozenset().union(*(SCOPES.get(s, frozenset()) for s in (DEFAULT_SCOPES if scopes is None else scopes)))
    return granted - _TENANT_WIDE if restricted else granted


def effective_scopes(scopes: frozenset[str] | None, restricted: bool) -> list[str]:
    """The scopes an API key can really use, as listed to its owner, once an outlet restriction has taken
    the tenant-wide permissions away: a scope it was given while it keeps some of that scope's
    permissions, and a scope it was not given only when it holds all of them (implied: ``invoices:write``
    reads invoices too, but ``invoices:read`` never lists ``invoices:write``). Reading outlets does not
    count: most scopes carry it, and a till's key created with ``admin`` keeps only that and is refused
    every admin route."""
    granted = key_permissions(scopes, restricted)
    given = DEFAULT_SCOPES if scopes is None else scopes

    def usable(scope: str, perms: frozenset[Perm]) -> bool:
        needed = perms - {Perm.OUTLETS_READ}
        return bool(needed & granted) if scope in given else bool(needed) and needed <= granted

    return sorted(s for s, perms in SCOPES.items() if usable(s, perms))


def grantable_scopes(principal: Principal) -> frozenset[str]:
    """The scopes ``principal`` may put on a new key: none that would give the key more than it has
    (an admin must not mint a key that can make owners)."""
    return frozenset(s for s, perms in SCOPES.items() if not exceeding(principal, perms))


def exceeding(principal: Principal, perms: frozenset[Perm]) -> frozenset[Perm]:
    """What of ``perms`` the principal may not do itself. "Never more than the caller may do" is this
    being empty: for the keys it creates and for the credentials it revokes or changes (an admin must
    neither mint nor revoke an owner-level credential such as the tenant's root key). The platform
    operator stands outside the tenant's hierarchy and is never exceeded."""
    if principal.is_operator:
        return frozenset()
    mine = permissions(principal)
    # The owner appoints auditors without reading restricted data itself (Art. 18(2)): appointing one
    # is the owner's decision, so OWNERSHIP covers RESTRICTED_READ when granting.
    # Likewise approving drafts: the tenant's root key does not approve itself, but it may create a person's
    # approval key (invoices:approve is opt-in, see OPT_IN_SCOPES).
    if Perm.OWNERSHIP in mine:
        mine = mine | {Perm.RESTRICTED_READ, Perm.INVOICES_APPROVE}
    return perms - mine


def check_not_exceeding(principal: Principal, perms: frozenset[Perm], what: str, *, field: str | None = None) -> None:
    extra = exceeding(principal, perms)
    if extra:
        raise Forbidden(f"{what} may do more than you may ({', '.join(sorted(p.value for p in extra))})",
                        code="scope_exceeds_caller", field=field, extra={"exceeding": sorted(p.value for p in extra)})


# An offboarded tenant's credentials still read (deprovisioning) until they are purged.
CLOSING = frozenset({"deprovisioning", "deleted"})


def check_provisioned(tenant_status: str | None) -> None:
    """A tenant being provisioned has no database yet: nothing to read or write until its job completes.
    Checked before the session is bound to the tenant (binding reaches the tenant's database)."""
    if tenant_status == "provisioning":
        raise Conflict("the tenant is being provisioned; retry in a few seconds", code="tenant_provisioning",
                       headers={"Retry-After": "2"})


def check_writable(principal: Principal) -> None:
    """A suspended (or closing) tenant reads but never writes. Every write made with a tenant's
    credential is admitted here: API keys and user tokens (``auth.dependencies``), dashboard sessions
    and invitation tokens (redeeming one adds a user)."""
    if principal.is_operator or principal.tenant_status == "active":
        return
    if principal.tenant_status in CLOSING:
        # A state, not a permission: the tenant is being offboarded and its data handed over, so
        # nothing may change under the export (409, like any write against the wrong state).
        raise Conflict(f"tenant is {principal.tenant_status}: it is being offboarded, reads only",
                       code="tenant_deprovisioning")
    raise Forbidden(f"tenant is {principal.tenant_status}: writes are refused", code="tenant_suspended")


def check(principal: Principal, perm: Perm) -> None:
    if perm not in permissions(principal):
        who = f"role {principal.role}" if principal.kind == "user" else "this API key"
        raise Forbidden(f"{who} may not do this (needs {perm.value})", code="insufficient_permissions",
                        extra={"required": perm.value})
