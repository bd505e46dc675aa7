"""Rendering a StalelaError as RFC 9457 problem+json; used by the one error handler (and by the few
endpoints that must answer an error while still committing, e.g. a failed login's audit entry).

The ``title`` and ``detail`` (and each ``errors[]`` entry's ``detail``) follow the request's
``Accept-Language`` among the shipped languages, else English; ``code`` and ``field`` never change,
so a client keys on them whatever the language. The answer says its language (``Content-Language``)
and that it depends on the header (``Vary``).
"""
from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from stalela.errors import FieldError, StalelaError
from stalela.i18n import NP_, Localizer, choose, localizer
from stalela.i18n.problems import CODE_CONTEXT, localize, sentence
from stalela.kit.fastjson import FastJSONResponse

PROBLEM_JSON = "application/problem+json"

# The input errors pydantic reports (its ``type``), as sentences naming the values of its ``ctx``:
# they reach clients through validation_problem's ``errors[]`` (the rest stay in pydantic's English).
INPUT_ERRORS: dict[str, str] = {
    "bool_parsing": NP_("problem", "must be true or false"),
    "bool_type": NP_("problem", "must be true or false"),
    "date_from_datetime_parsing": NP_("problem", "must be a date (YYYY-MM-DD)"),
    "date_parsing": NP_("problem", "must be a date (YYYY-MM-DD)"),
    "date_type": NP_("problem", "must be a date (YYYY-MM-DD)"),
    "datetime_parsing": NP_("problem", "must be a date and time (RFC 3339)"),
    "datetime_type": NP_("problem", "must be a date and time (RFC 3339)"),
    "decimal_max_digits": NP_("problem", "at most %(max_digits)s digits"),
    "decimal_max_places": NP_("problem", "at most %(decimal_places)s decimal places"),
    "decimal_parsing": NP_("problem", "must be a decimal number"),
    "decimal_type": NP_("problem", "must be a decimal number"),
    "decimal_whole_digits": NP_("problem", "at most %(whole_digits)s digits before the decimal point"),
    "dict_type": NP_("problem", "must be an object"),
    "model_attributes_type": NP_("problem", "must be an object"),
    "model_type": NP_("problem", "must be an object"),
    "enum": NP_("problem", "must be %(expected)s"),
    "literal_error": NP_("problem", "must be %(expected)s"),
    "finite_number": NP_("problem", "must be a finite number"),
    "float_parsing": NP_("problem", "must be a number"),
    "float_type": NP_("problem", "must be a number"),
    "greater_than": NP_("problem", "must be greater than %(gt)s"),
    "greater_than_equal": NP_("problem", "must be at least %(ge)s"),
    "less_than": NP_("problem", "must be less than %(lt)s"),
    "less_than_equal": NP_("problem", "must be at most %(le)s"),
    "int_from_float": NP_("problem", "must be a whole number"),
    "int_parsing": NP_("problem", "must be a whole number"),
    "int_type": NP_("problem", "must be a whole number"),
    "list_type": NP_("problem", "must be a list"),
    "multiple_of": NP_("problem", "must be a multiple of %(multiple_of)s"),
    "none_required": NP_("problem", "must be null"),
    "string_pattern_mismatch": NP_("problem", "does not have the expected form"),
    "string_too_long": NP_("problem", "at most %(max_length)s characters"),
    "string_too_short": NP_("problem", "at least %(min_length)s characters"),
    "string_type": NP_("problem", "must be a string"),
    "too_long": NP_("problem", "at most %(max_length)s items"),
    "too_short": NP_("problem", "at least %(min_length)s items"),
    "url_parsing": NP_("problem", "must be a URL"),
    "url_type": NP_("problem", "must be a URL"),
    "uuid_parsing": NP_("problem", "must be a UUID"),
    "uuid_type": NP_("problem", "must be a UUID"),
    "timezone_aware": NP_("problem", "must carry a time zone offset"),
    "timezone_naive": NP_("problem", "must not carry a time zone offset"),
}


def problem_language(request: Request | None) -> Localizer:
    """The reader's language for an error: a shipped one of ``Accept-Language``, else English."""
    header = request.headers.get("accept-language") if request is not None else None
    return localizer(choose(accept_language=header))


def _entry(l10n: Localizer, e: FieldError) -> str:
    template = INPUT_ERRORS.get(e.code)
    text = sentence(l10n, template, e.values) if template and l10n.has(template, CODE_CONTEXT) else None
    # Without the values its sentence names (our own checks raise pydantic's codes too): the code's sentence.
    return text or localize(l10n, code=e.code, title="", detail=e.detail)[1]


def localized_problem(error: StalelaError, l10n: Localizer) -> dict[str, Any]:
    """``error.problem()`` with its texts in ``l10n``'s language."""
    body = error.problem()
    if l10n.lang == "en":
        return body
    title, detail = localize(l10n, code=error.code, title=error.title, detail=error.detail)
    if error.errors:
        entries = [_entry(l10n, e) for e in error.errors]
        body["errors"] = [{**e.as_dict(), "detail": text} for e, text in zip(error.errors, entries)]
        first = error.errors[0]
        if error.detail == f"{first.field}: {first.detail}":  # validation_problem's summary of the first
            detail = f"{first.field}: {entries[0]}"
        elif error.detail == first.detail:  # a fiscal rule's single entry
            detail = entries[0]
    body["title"], body["detail"] = title, detail
    if detail != error.detail and not l10n.has(error.detail):
        # The code's sentence replaced a detail written with values in it (an amount left to credit, a
        # limit, the parameter at fault): the original keeps them for a client or a person who needs them.
        body["detail_en"] = error.detail
    return body


def problem_headers(error: StalelaError, l10n: Localizer) -> dict[str, str]:
    vary = ", ".join(v for v in (error.headers.get("Vary"), "Accept-Language") if v)
    return {**error.headers, "Content-Language": l10n.lang, "Vary": vary}


def problem_response(error: StalelaError, request: Request | None = None) -> JSONResponse:
    if request is None:
        return _response(error, error.problem(), error.headers)
    l10n = problem_language(request)
    body = localized_problem(error, l10n)
    body["instance"] = request.url.path
    rid = getattr(request.state, "request_id", None) or request.scope.get("state", {}).get("request_id")
    if rid:
        body["request_id"] = rid
    return _response(error, body, problem_headers(error, l10n))


def _response(error: StalelaError, body: dict[str, Any], headers: dict[str, str]) -> JSONResponse:
    # Only the route-specific extra members may hold a float (kit/fastjson.py): those keep json's encoder.
    response = JSONResponse if error.extra else FastJSONResponse
    return response(body, status_code=error.status, media_type=PROBLEM_JSON, headers=headers)
