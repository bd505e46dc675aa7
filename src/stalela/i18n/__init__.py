"""Languages: which one a reader gets, the translated strings, and numbers, money and dates per locale.

Stalela ships French, Spanish and English. English is the source language (msgids are English), so
it needs no catalog. The catalogs are gettext ``.po`` files under ``locales/<lang>/LC_MESSAGES/``,
one file per area (consoles, documents, errors…) so that areas are translated independently; a
language's files are merged into one set of translations. They are compiled in memory when first used
(Babel reads the ``.po`` and writes the ``.mo`` to a buffer): no build step, and the ``.po`` in the
repository is the only source of truth. ``tests/i18n`` fails when a string of a template or a
``gettext`` call is missing from a catalog.

Which language: see ``choose``. Formatting (Babel, CLDR data): grouping separators are the locale's
non-breaking ones (French uses U+202F), so an amount never wraps inside itself.
"""
from __future__ import annotations

import gettext as _gettext
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import Translations

LANGUAGES: tuple[str, ...] = ("fr", "es", "en")  # the order the language menus show them
SOURCE = "en"
# A tenant that chose no language gets its jurisdiction's official one.
JURISDICTION_LANGUAGES = {"CD": "fr", "AR": "es"}
LANGUAGE_NAMES = {"fr": "Français", "es": "Español", "en": "English"}  # each in its own language
LOCALES_DIR = Path(__file__).parent / "locales"


def normalize(tag: str | None) -> str | None:
    """``"fr-CD"``, ``"fr_FR"``, ``"FR"`` → ``"fr"``; a language Stalela does not ship → ``None``."""
    if not tag:
        return None
    lang = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return lang if lang in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The first shipped language of an ``Accept-Language`` header by quality (RFC 9110 §12.5.4)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:32]):  # bounded: a header is client input
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)  # a weight, not money: float is right here
                except ValueError:
                    quality = 0.0
        lang = normalize(tag)
        if lang and quality > 0:
            ranked.append((-quality, position, lang))
    return min(ranked)[2] if ranked else None


def tenant_language(locale: str | None, jurisdiction: str | None) -> str:
    """A tenant's default: its own choice, else its jurisdiction's language, else English."""
    return normalize(locale) or JURISDICTION_LANGUAGES.get((jurisdiction or "").upper(), SOURCE)


def choose(*preferences: str | None, accept_language: str | None = None) -> str:
    """The first of ``preferences`` Stalela ships, else the browser's (``Accept-Language``), else English.

    Callers pass their chain in order: the consoles pass the user's preference then the tenant's
    default; public pages an explicit ``?lang=`` only (the visitor's browser decides, not the merchant).
    """
    for preference in preferences:
        lang = normalize(preference)
        if lang:
            return lang
    return from_accept_language(accept_language) or SOURCE


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    """Every catalog file of ``lang`` merged (English: the msgids themselves)."""
    if lang == SOURCE or lang not in LANGUAGES:
        return _gettext.NullTranslations()
    merged: Translations | None = None
    for path in sorted((LOCALES_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            catalog = read_po(f, locale=lang, domain=path.stem)
        buffer = BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)  # a fuzzy entry is a guess: English until reviewed
        buffer.seek(0)
        part = Translations(buffer, domain="messages")
        merged = part if merged is None else merged.merge(part)
    return merged or _gettext.NullTranslations()


def _zone(tz: str | None) -> ZoneInfo | timezone:
    try:
        return ZoneInfo(tz) if tz else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class Localizer:
    """Everything language-dependent for one language: strings, numbers, money, dates."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else SOURCE
        self.locale = Locale.parse(self.lang)
        self.translations = translations(self.lang)

    # --- strings ---
    def gettext(self, message: str, **values: Any) -> str:
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        text = self.translations.ngettext(singular, plural, n)
        return text % {"num": n, **values}

    def pgettext(self, context: str, message: str, **values: Any) -> str:
        text = self.translations.pgettext(context, message)
        return text % values if values else text

    def has(self, message: str, context: str | None = None) -> bool:
        """Whether the catalog translates ``message`` (English has every message)."""
        if self.lang == SOURCE:
            return True
        key = f"{context}\x04{message}" if context else message
        return key in getattr(self.translations, "_catalog", {})

    _ = gettext

    # --- numbers ---
    def number(self, value: Any, digits: int | None = None) -> str:
        amount = _decimal(value)
        if amount is None:
            return "—"
        if amount == 0:
            amount = abs(amount)  # never "-0"
        if digits is None:
            return format_decimal(amount, locale=self.locale, decimal_quantization=False)
        return format_decimal(amount, format=f"#,##0.{'0' * digits}" if digits else "#,##0", locale=self.locale)

    def money(self, value: Any, currency: str | None = None, *, minor_units: bool = False) -> str:
        """``Decimal("-19640.29")`` → ``"-19 640,29 CDF"`` (fr). ``minor_units``: ``value`` is integer cents."""
        amount = _decimal(value)
        if amount is None:
            return "—"
        if minor_units:
            amount = amount / 100
        if amount == 0:
            amount = abs(amount)  # a credit note's exempt group: -0.00 is no amount anyone should read
        if not currency:
            return self.number(amount, 2)
        return format_currency(amount, currency, locale=self.locale, currency_digits=True)

    def percent(self, rate: Any) -> str:
        """A rate as a fraction (``"0.16"``) → ``"16 %"`` (fr), ``"10.5%"`` (en)."""
        amount = _decimal(rate)
        if amount is None:
            return "—"
        return format_percent(amount, locale=self.locale, decimal_quantization=False)

    # --- time ---
    def datetime(self, value: Any, tz: str | None = None, *, seconds: bool = False) -> str:
        """An instant in the reader's zone (an outlet's, usually), e.g. ``"7 déc. 2026, 14:03"`` (fr)."""
        moment = instant(value)
        if moment is None:
            return "—"
        zone = _zone(tz)
        if seconds:
            return format_datetime(moment, "medium", tzinfo=zone, locale=self.locale)
        # The locale's medium date and short time, joined the locale's way ("{1}, {0}", "{1} {0}").
        joiner = str(self.locale.datetime_formats.get("medium", "{1} {0}"))
        return joiner.format(format_time(moment, "short", tzinfo=zone, locale=self.locale),
                             format_date(moment.astimezone(zone), "medium", locale=self.locale))

    def date(self, value: Any, form: str = "medium") -> str:
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        if isinstance(value, datetime):
            value = value.date()
        return format_date(value, form, locale=self.locale)

    def time(self, value: Any, tz: str | None = None) -> str:
        moment = instant(value)
        return "—" if moment is None else format_time(moment, "short", tzinfo=_zone(tz), locale=self.locale)

    def duration(self, seconds: float | None) -> str:
        """An age or a span to its largest unit, the language's way ("5 min", "2 j", "2 días")."""
        if seconds is None:
            return "—"
        return format_timedelta(timedelta(seconds=seconds), format="short", locale=self.locale)

    def zone_name(self, tz: str | None, at: Any = None) -> str:
        """A short name for the zone at the instant ``at`` (default now), e.g. ``"WAT"``: in a zone with
        summer time the name (and offset) of a time shown depends on its date, not today's."""
        moment = (instant(at) or datetime.now(timezone.utc)).astimezone(_zone(tz))
        return moment.tzname() or "UTC"


def instant(value: Any) -> datetime | None:
    """An instant from what templates and payloads hold: an RFC 3339 string, a datetime (naive: the
    database's UTC) or a date (its UTC midnight); None or "" → None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def N_(message: str) -> str:
    """Marks a string for the catalogs where it is defined (a table); it is translated where shown."""
    return message


def NP_(context: str, message: str) -> str:  # noqa: N802 (gettext's naming)
    """``N_`` with a context: shown through ``Localizer.pgettext(context, message)``."""
    return message


@cache
def localizer(lang: str | None) -> Localizer:
    return Localizer(normalize(lang) or SOURCE)
