"""The plumbing both consoles share: templates, cookies, CSRF, HTML errors and who is looking.

Sessions reuse the API's credentials rather than inventing new ones. A merchant session is the
user's RS256 access token and rotating refresh token (auth.users), kept in HttpOnly cookies. An
operator user's session is a row of ``operator_sessions`` (controlplane.operator_service: revoked at
sign-out and deactivation); a session opened with the static ``STALELA_OPERATOR_TOKEN`` (automation,
break-glass) is an expiry signed with that token (changing the token ends every such session). Every
form POST carries a CSRF token that must match the session's.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Callable
from urllib.parse import parse_qsl, quote, urlsplit

import jwt
from jinja2 import Environment, pass_context, pass_environment
from markupsafe import Markup
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from stalela.auth import users
from stalela.auth.dependencies import SAFE_METHODS, DbSession, client_ip
from stalela.auth.permissions import Perm, check_writable, permissions
from stalela.auth.principal import Principal
from stalela.auth.service import authenticate_user
from stalela.controlplane import operator_service
from stalela.errors import (
    BadRequest, FieldError, Forbidden, StalelaError, TooManyRequests, Unauthorized, ValidationFailed,
)
from stalela.i18n import choose, instant, localizer, normalize, tenant_language
from stalela.i18n.jinja import LOCALIZED_FILTERS, LocalizedTemplates
from stalela.i18n.problems import localize
from stalela.kit.jsonbody import JSONRoute
from stalela.kit.schemas import CalendarDate
from stalela.observability.logging import get_logger
from stalela.dashboard.repository import DashboardRepository
from stalela.fiscal.jurisdictions import get_jurisdiction, labels
from stalela.fiscal.jurisdictions.ar_data import RECEIPT_TYPES as _AR_RECEIPTS
from stalela.fiscal.jurisdictions.drc import INVOICE_TYPES as _DRC_INVOICE_TYPES
from stalela.tenancy.context import bind_platform
from stalela.tenancy.repository import TenantRepository

log = get_logger("stalela.dashboard")
HERE = Path(__file__).parent
ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE = "stalela_app", "stalela_app_refresh", "stalela_app_csrf"
OPS_COOKIE = "stalela_ops"
LANG_COOKIE = "stalela_lang"  # a signed-out visitor's choice of language (?lang=)
OPS_SESSION_SECONDS = 8 * 3600
OPS_SELF_SERVICE = ("/ops/logout", "/ops/account")  # what a read-only operator may still post
AR_TYPES = tuple(_AR_RECEIPTS)  # the invoice list's type filter, per jurisdiction
DRC_TYPES = tuple(_DRC_INVOICE_TYPES)
_REFRESH_GRACE = 30.0  # seconds a rotated refresh result is reused by concurrent requests of one process

templates = LocalizedTemplates(HERE / "templates")


@pass_environment
def _money(env: Environment, value: Any, currency: str | None = None) -> str:
    """The locale's way (Babel, non-breaking grouping). An ``int`` is minor units (cents), as the
    aggregates store them; a str or Decimal is the amount itself."""
    if value is None or value == "":
        return "—"
    return LOCALIZED_FILTERS["money"](env, value, currency, minor_units=isinstance(value, int))


@pass_environment
def _amount(env: Environment, value: Any, currency: str | None = None, negate: bool = False) -> Markup:
    """An amount that never wraps inside itself: ``<span class="amount">`` (nowrap in app.css).
    ``negate``: a credit note's total, which the seal stores positive, is shown as what it is."""
    if negate and value not in (None, ""):
        value = -value if isinstance(value, int) else -Decimal(str(value))
    text = _money(env, value, currency)
    kind = " negative" if text.startswith(("-", "\u2212")) else ""
    return Markup('<span class="amount%s">%s</span>') % (kind, text)


def _viewer_zone(context: Any) -> str | None:
    viewer = context.get("viewer")
    return getattr(viewer, "tz", None) or None


@pass_context
def _when(context: Any, value: Any, tz: str | None = None, seconds: bool = False) -> str:
    """An instant in ``tz`` (an outlet's zone), else the viewer's zone, else UTC (and then says so: an
    operator's pages span every zone)."""
    zone = tz or _viewer_zone(context)
    text = LOCALIZED_FILTERS["when"](context.environment, value, zone, seconds)
    return text if zone or text == "—" else f"{text} UTC"


@pass_context
def _at(context: Any, value: Any, tz: str | None = None) -> Markup:
    """``<time datetime="…Z" title="… UTC">local time</time>``: the local time to read, UTC on hover."""
    moment = instant(value)
    if moment is None:
        return Markup("—")
    moment = moment.astimezone(timezone.utc)
    l10n = context.environment.globals["i18n"]
    zone = tz or _viewer_zone(context)
    local = l10n.datetime(moment, zone) + ("" if zone else " UTC")  # no zone: say which time it is
    return Markup('<time datetime="%s" title="%s UTC">%s</time>') % (
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), l10n.datetime(moment, "UTC", seconds=True), local)


def _type_name(invoice_type: str, jurisdiction: str | None = None) -> str:
    """An Argentine receipt type by name ("Factura B"); the DRC's codes (FV, FA) as they are."""
    return labels.type_name(jurisdiction, invoice_type) if jurisdiction == "AR" else invoice_type


def _group_label(group: str, jurisdiction: str | None = None) -> str:
    """An Argentine group (a rate code) as "IVA 21 %"; a DRC group letter as it is."""
    return labels.group_label(jurisdiction, group)


def _label(text: Callable[..., str], with_jurisdiction: bool = False) -> Callable[..., str]:
    """A jurisdiction code by name with the code ("Facture de vente (FV)"), in the page's language."""
    if with_jurisdiction:
        @pass_environment
        def named(env: Environment, code: Any, jurisdiction: str | None = None, *args: Any) -> str:
            return text(env.globals["i18n"], jurisdiction, code, *args)
    else:
        @pass_environment
        def named(env: Environment, code: Any) -> str:
            return text(env.globals["i18n"], code)
    return named


def _cents(value: Any) -> int:
    """A decimal string amount ("19640.29") as integer cents, for arithmetic in a template."""
    return int((Decimal(str(value or 0)) * 100).to_integral_value())


templates.update(filters=dict(money=_money, amount=_amount, when=_when, at=_at, type_name=_type_name,
                              group_label=_group_label, cents=_cents,
                              invoice_type=_label(labels.invoice_type_text, True),
                              tax_group=_label(labels.tax_group_text, True),
                              item_type=_label(labels.item_type_text), buyer_type=_label(labels.buyer_type_text),
                              payment_method=_label(labels.payment_method_text),
                              nature=_label(labels.nature_text)),
                 globals=dict(AR_TYPES=AR_TYPES, DRC_TYPES=DRC_TYPES))


class LoginRequired(Exception):
    def __init__(self, console: str) -> None:
        super().__init__(console)
        self.console = console


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.settings.effective_public_url.startswith("https://")


def queue_cookie(request: Request, name: str, value: str | None, *, path: str, max_age: int = 0,
                 samesite: str = "lax", always: bool = False) -> None:
    """Set (or, with ``None``, delete) a cookie on the response this request ends with.

    Only on a successful response, unless ``always``: a failed form's transaction is rolled back,
    and so must be whatever the cookie would have said about it.
    """
    pending = getattr(request.state, "dashboard_cookies", None)
    if pending is None:
        pending = []
        request.state.dashboard_cookies = pending
    pending.append((name, value, path, max_age, samesite, always))


def _apply_cookies(request: Request, response: Response, succeeded: bool) -> None:
    for name, value, path, max_age, samesite, always in getattr(request.state, "dashboard_cookies", ()):
        if not (succeeded or always):
            continue
        if value is None:
            response.delete_cookie(name, path=path, secure=is_secure(request), httponly=True, samesite=samesite)
        else:
            response.set_cookie(name, value, max_age=max_age, path=path, secure=is_secure(request), httponly=True,
                                samesite=samesite)


SECURITY_HEADERS = {
    # Everything is served from here: no inline script, no third party, no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def page_language(request: Request) -> str:
    """The page's language: the signed-in viewer's (see ``Viewer.lang``), else an explicit ``?lang=``,
    else the one chosen earlier on a signed-out page (a cookie), else the browser's (``Accept-Language``),
    else English."""
    viewer = getattr(request.state, "viewer", None)
    if viewer is not None and viewer.lang:
        return viewer.lang
    return choose(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE),
                  accept_language=request.headers.get("accept-language"))


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    context.setdefault("path", request.url.path)
    lang = page_language(request)
    response = HTMLResponse(templates.render(lang, template, request=request, **context), status_code=status,
                            headers={"Content-Language": lang})
    # Remembered for the pages that know no viewer (sign-in, an unknown address): the switch's choice
    # on a signed-out page, else the signed-in viewer's language.
    remembered = lang if context["viewer"] is not None else normalize(request.query_params.get("lang"))
    if remembered and remembered != request.cookies.get(LANG_COOKIE):
        response.set_cookie(LANG_COOKIE, remembered, max_age=365 * 86400, path="/", secure=is_secure(request),
                            httponly=True, samesite="lax")
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _error_page(request: Request, status: int, title: str, detail: str, code: str) -> HTMLResponse:
    """The error in the reader's language (``stalela.i18n.problems``); the code stays as it is."""
    back = "/ops" if request.url.path.startswith("/ops") else "/app"
    referer = request.headers.get("referer") or ""
    if referer and urlsplit(referer).netloc in _own_hosts(request):
        back = urlsplit(referer).path or back
    title, detail = localize(localizer(page_language(request)), code=code, title=title, detail=detail)
    return render(request, "error.html", status=status, title=title, detail=detail, back=back, code=code)


def not_found_page(request: Request) -> HTMLResponse:
    """An unknown path under /app or /ops: a page a person can read (and a way home), not JSON."""
    home = "/ops" if request.url.path.startswith("/ops") else "/app"
    l10n = localizer(page_language(request))
    response = render(request, "error.html", status=404, title=l10n.gettext("Page not found"),
                      detail=l10n.gettext("There is no page at this address."), back=home, code="not_found")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class DashboardRoute(JSONRoute):
    """Errors become HTML pages (the API's handlers answer problem+json) and cookies get set here.

    Wrapping the whole handler means the request's transaction has already been rolled back when an
    error page is rendered, so a failed form never commits half its work.
    """

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as exc:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                nxt = f"?next={quote(target)}" if request.method in SAFE_METHODS else ""
                response = redirect(f"{exc.console}/login{nxt}")
            except StalelaError as exc:
                response = _error_page(request, exc.status, exc.title, exc.detail, exc.code)
                response.headers.update(exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                response = _error_page(request, 400, "Bad request", f"{where}: {first.get('msg', 'invalid')}",
                                       "invalid_parameter")
            except Exception:
                log.exception("dashboard_error", path=request.url.path)
                response = _error_page(request, 500, "Something went wrong",
                                       "An unexpected error occurred; it has been logged.", "internal_error")
            _apply_cookies(request, response, response.status_code < 400)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return wrapped


# --- forms and CSRF ------------------------------------------------------------------------------


ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def opt(value: str | None, pattern: re.Pattern[str], name: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not pattern.match(value):
        raise ValidationFailed(f"{name}: not a valid value", code="invalid_parameter", field=name)
    return value


# The API's date rule, not a second one: YYYY-MM-DD text only, inside the calendar the day arithmetic
# can handle (from=0001-01-01 broke an A report's stream, from=20261201 passed as a date).
_DAY = TypeAdapter(CalendarDate)


def opt_day(value: str | None, name: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return _DAY.validate_python(value)
    except PydanticValidationError as exc:
        error = exc.errors()[0]
        detail = f"{name}: {error['msg']} (got {value[:40]!r})"
        raise ValidationFailed(detail, code="invalid_parameter", field=name,
                               errors=[FieldError(name, error["type"], error["msg"])]) from None


class Form(dict):
    """An urlencoded form (the consoles post no files): first value per name, ``all`` for lists."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__()
        self.pairs = pairs
        for k, v in pairs:
            self.setdefault(k, v)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def text(self, name: str) -> str | None:
        value = (self.get(name) or "").strip()
        return value or None


async def read_form(request: Request) -> Form:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("expected a form (application/x-www-form-urlencoded)", code="form_expected")
    body = (await request.body()).decode("utf-8", errors="replace")
    return Form(parse_qsl(body, keep_blank_values=True, max_num_fields=2000))


def _own_hosts(request: Request) -> set[str]:
    """The names this site answers to: the Host header, and behind a proxy that rewrites it, the
    public URL's host (STALELA_PUBLIC_URL)."""
    hosts = {request.headers.get("host", "")}
    public = request.app.state.settings.public_url
    if public:
        hosts.add(urlsplit(public).netloc)
    return hosts


def check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc not in _own_hosts(request):
        raise Forbidden("cross-site form submission refused", code="csrf_failed")


def check_csrf(request: Request, form: Form, expected: str) -> None:
    """The hidden field must match the session's token; a foreign Origin is refused outright."""
    check_origin(request)
    if not expected or not hmac.compare_digest(form.get("csrf", "").encode(), expected.encode()):
        raise Forbidden("the form expired or did not come from this site; reload the page and try again",
                        code="csrf_failed")


# --- merchant sessions ---------------------------------------------------------------------------


@dataclass
class Viewer:
    principal: Principal
    email: str
    tenant_name: str
    csrf: str
    console: str = "app"
    jurisdiction: str = "CD"  # the tenant's: an Argentine console speaks of ARCA, points of sale and CAEs
    perms: frozenset[Perm] = field(default_factory=frozenset)
    writer: bool = True  # the operations console: False for the read-only ``support`` role
    # The console's language: the user's (or operator's) preference, else the tenant's default, else
    # the browser's (stalela.i18n.choose). Empty: not known yet (page_language decides).
    lang: str = ""
    # The zone times are shown in where a page has no outlet of its own: the tenant's first outlet's,
    # else its jurisdiction's. Empty: UTC.
    tz: str = ""
    user_locale: str | None = None  # the user's own choice (None: the organisation's default)
    tenant_locale: str | None = None  # the organisation's choice (None: its jurisdiction's language)

    def can(self, perm: str) -> bool:
        return Perm(perm) in self.perms


# Lax, not Strict: a link from an e-mail or another site must open the console signed in. Lax still
# keeps the cookies off cross-site POSTs, and every form also needs the CSRF token.
def start_session(request: Request, tokens: dict[str, Any]) -> None:
    settings = request.app.state.settings
    _queue_tokens(request, tokens)
    queue_cookie(request, CSRF_COOKIE, secrets.token_urlsafe(24), path="/app",
                 max_age=settings.refresh_token_days * 86400)


def _queue_tokens(request: Request, tokens: dict[str, Any], *, committed: bool = False) -> None:
    # ``committed``: the rotation was its own transaction, so the browser must get the new tokens
    # whatever this request ends with (its old refresh token is spent).
    queue_cookie(request, ACCESS_COOKIE, tokens["access_token"], path="/app", max_age=int(tokens["expires_in"]),
                 always=committed)
    queue_cookie(request, REFRESH_COOKIE, tokens["refresh_token"], path="/app",
                 max_age=int(tokens["refresh_expires_in"]), always=committed)


def end_session(request: Request) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        queue_cookie(request, name, None, path="/app")
    queue_cookie(request, CSRF_COOKIE, None, path="/app")


# A page and the progress poller may both find the access token expired at once: the first rotates
# the refresh token, the second would present the used one and revoke the whole session (reuse
# detection). Within one process the second reuses the first's result for a few seconds.
_rotated: dict[str, tuple[float, dict[str, Any]]] = {}


async def _rotate(request: Request, session, refresh: str) -> dict[str, Any]:  # noqa: ANN001
    db, settings = request.app.state.db, request.app.state.settings
    key = hashlib.sha256(refresh.encode()).hexdigest()
    now = time.monotonic()
    for stale in [k for k, (at, _) in _rotated.items() if now - at > _REFRESH_GRACE]:
        _rotated.pop(stale, None)
    if key in _rotated:
        return _rotated[key][1]
    ip = client_ip(request)
    try:
        if request.method not in SAFE_METHODS:
            # Part of the form's transaction: rolled back with it, so not shared with other requests.
            result = await users.refresh(db, settings, session, refresh, ip)
        else:
            # The request's own transaction is read-only; a rotation is a write of its own.
            async with db.transaction() as side:
                result = await users.refresh(db, settings, side, refresh, ip)
    except Unauthorized:
        raise LoginRequired("/app") from None
    if result.get("reused"):
        raise LoginRequired("/app")
    if request.method in SAFE_METHODS:
        _rotated[key] = (now, result)
    return result


async def _viewer(request: Request, session: DbSession) -> Viewer:
    access, refresh = request.cookies.get(ACCESS_COOKIE), request.cookies.get(REFRESH_COOKIE)
    csrf = request.cookies.get(CSRF_COOKIE)
    if not refresh or not csrf:
        raise LoginRequired("/app")
    db, settings = request.app.state.db, request.app.state.settings
    try:
        if not access:
            raise Unauthorized("no access token", code="token_expired")
        principal = await authenticate_user(db, settings, session, f"Bearer {access}")
    except Unauthorized:
        tokens = await _rotate(request, session, refresh)
        access = tokens["access_token"]
        _queue_tokens(request, tokens, committed=request.method in SAFE_METHODS)
        try:
            principal = await authenticate_user(db, settings, session, f"Bearer {access}")
        except Unauthorized:
            raise LoginRequired("/app") from None
    # The same token bucket as the user's API calls: the console is not a way around the rate limit.
    limiter = request.app.state.limiter
    decision = await limiter.take(f"user:{principal.user_id}", *limiter.limits(principal.rate_per_second,
                                                                               principal.rate_burst))
    if not decision.allowed:
        raise TooManyRequests("too many requests; wait a moment and reload", code="rate_limited",
                              headers={"Retry-After": str(max(1, round(decision.retry_after + 0.5)))})
    if request.method not in SAFE_METHODS:
        check_writable(principal)
    claims = jwt.decode(access, options={"verify_signature": False})  # verified just above
    tenant = await TenantRepository(session).get(principal.tenant_id)
    jurisdiction = tenant.jurisdiction if tenant else "CD"
    repo = DashboardRepository(session)
    user_locale = await repo.user_locale(principal.user_id) if principal.user_id else None
    tenant_locale = tenant.locale if tenant else None
    # The user's choice, else the organisation's default (its jurisdiction's language when it chose none).
    lang = choose(user_locale, tenant_language(tenant_locale, jurisdiction),
                  accept_language=request.headers.get("accept-language"))
    viewer = Viewer(principal, claims.get("email", ""), tenant.name if tenant else "", csrf,
                    jurisdiction=jurisdiction, perms=permissions(principal), lang=lang,
                    tz=await repo.first_outlet_zone() or get_jurisdiction(jurisdiction).default_timezone,
                    user_locale=user_locale, tenant_locale=tenant_locale)
    request.state.viewer = viewer
    return viewer


CurrentViewer = Annotated[Viewer, Depends(_viewer)]


def need(viewer: Viewer, perm: Perm) -> None:
    """The same rule as the API's ``Allow``: a missing permission is a 403 page, never a hidden crash."""
    if perm not in viewer.perms:
        raise Forbidden(f"your role ({viewer.principal.role}) may not open this page", code="insufficient_permissions")


async def posted(request: Request, viewer: Viewer) -> Form:
    form = await read_form(request)
    check_csrf(request, form, viewer.csrf)
    return form


# --- operator sessions ---------------------------------------------------------------------------


def _operator_secret(request: Request) -> bytes:
    token = request.app.state.settings.operator_token
    return token.get_secret_value().encode() if token else b""


def _sign(secret: bytes, purpose: str, expires: int) -> str:
    return hmac.new(secret, f"{purpose}:{expires}".encode(), hashlib.sha256).hexdigest()


def token_login(request: Request, token: str) -> bool:
    """A session opened with the static operator token."""
    secret = _operator_secret(request)
    if not secret or not hmac.compare_digest(token.encode(), secret):
        return False
    expires = int(time.time()) + OPS_SESSION_SECONDS
    queue_cookie(request, OPS_COOKIE, f"{expires}.{_sign(secret, 'ops-session', expires)}", path="/ops",
                 max_age=OPS_SESSION_SECONDS, samesite="strict")
    return True


def user_login(request: Request, session_token: str) -> None:
    """A session of an operator user (the token of ``operator_service.start_session``)."""
    queue_cookie(request, OPS_COOKIE, session_token, path="/ops", max_age=OPS_SESSION_SECONDS, samesite="strict")


def _token_viewer(request: Request, raw: str) -> Viewer:
    secret = _operator_secret(request)
    expires_text, _, signature = raw.partition(".")
    if not secret or not expires_text.isdigit() or int(expires_text) < time.time():
        raise LoginRequired("/ops")
    expires = int(expires_text)
    if not hmac.compare_digest(signature.encode(), _sign(secret, "ops-session", expires).encode()):
        raise LoginRequired("/ops")
    return Viewer(Principal(kind="operator"), "operator token", "Platform", _sign(secret, "ops-csrf", expires)[:40],
                  console="ops")


async def _operator(request: Request, session: DbSession) -> Viewer:
    raw = request.cookies.get(OPS_COOKIE, "")
    if raw.startswith(operator_service.SESSION_PREFIX):
        op = await operator_service.session_operator(session, raw)
        if op is None:  # expired, signed out, or the operator was deactivated
            raise LoginRequired("/ops")
        csrf = hashlib.sha256(f"ops-csrf:{raw}".encode()).hexdigest()[:40]
        viewer = Viewer(Principal(kind="operator", user_id=op.id, role=op.role), op.email, op.name, csrf,
                        console="ops", writer=op.role == "platform_admin", lang=op.locale or "")
    else:
        viewer = _token_viewer(request, raw)
    # Support reads everything and changes nothing: every POST but signing out and choosing one's own
    # language is refused here, once, so that no console action can forget the check (the pages hide the
    # buttons too).
    if request.method not in SAFE_METHODS and not viewer.writer and request.url.path not in OPS_SELF_SERVICE:
        raise Forbidden("your operator role (support) is read-only", code="operator_read_only")
    await bind_platform(session)
    request.state.viewer = viewer
    return viewer


CurrentOperator = Annotated[Viewer, Depends(_operator)]
