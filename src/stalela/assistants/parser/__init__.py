"""The offline, deterministic rule parser of invoice requests in Spanish and French (issue 19,
item 5): text + tenant context -> a draft shaped like the body of POST /v1/invoices, with a
calibrated confidence. Pure: no database, no network, no clock (today is in the context)."""
from stalela.assistants.parser.context import (
    ACCEPT_THRESHOLD,
    PARSER_VERSION,
    Draft,
    KnownBuyer,
    TenantContext,
)
from stalela.assistants.parser.draft import parse_request

__all__ = ["ACCEPT_THRESHOLD", "PARSER_VERSION", "Draft", "KnownBuyer", "TenantContext", "parse_request"]
