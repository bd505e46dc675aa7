"""Stand-ins for two filters of the console's shared plumbing (``web.py``), used by the settings pages
(keys, users, webhooks, privacy, billing) while web.py does not define them yet: ``at`` (an instant as
``<time datetime="…Z" title="… UTC">``, read in the viewer's zone) and ``amount`` (money that never
wraps inside itself, in the page's language). Registered only where web.py has none, so once it has
them this module does nothing and can go.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jinja2 import pass_context
from markupsafe import Markup

from stalela.dashboard.web import templates


def _instant(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


@pass_context
def _at(context: Any, value: Any, tz: str | None = None) -> Markup:
    moment = _instant(value)
    if moment is None:
        return Markup("—")
    l10n = context.environment.globals["i18n"]
    zone = tz or getattr(context.get("viewer"), "tz", None) or None
    return Markup('<time datetime="%s" title="%s UTC">%s</time>') % (
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), l10n.datetime(moment, "UTC", seconds=True), l10n.datetime(moment, zone))


@pass_context
def _amount(context: Any, value: Any, currency: str | None = None) -> Markup:
    # An int is minor units (cents), as the console's other amounts; a str or Decimal the amount itself.
    text = context.environment.globals["i18n"].money(value, currency, minor_units=isinstance(value, int))
    kind = " negative" if text.startswith(("-", "\u2212")) else ""
    return Markup('<span class="amount%s">%s</span>') % (kind, text)


_missing = {name: f for name, f in (("at", _at), ("amount", _amount)) if name not in templates.env("en").filters}
if _missing:
    templates.update(filters=_missing)
