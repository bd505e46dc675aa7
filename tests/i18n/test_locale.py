"""Which language a reader gets, and numbers, money and times per locale."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from stalela.i18n import choose, from_accept_language, localizer, normalize, tenant_language


@pytest.mark.parametrize(("header", "lang"), [
    ("fr-CD,fr;q=0.9,en;q=0.8", "fr"), ("en-US;q=0.5, es-AR, fr;q=0.9", "es"), ("de, it", None),
    ("", None), (None, None), ("fr;q=0, es;q=0.1", "es"), ("fr;q=abc, en", "en"), ("*", None),
])
def test_accept_language_by_quality(header, lang):
    assert from_accept_language(header) == lang


def test_the_chain_user_then_tenant_then_browser():
    assert choose("es", "fr", accept_language="en") == "es"
    assert choose(None, "fr", accept_language="en") == "fr"
    assert choose(None, None, accept_language="es-AR") == "es"
    assert choose("klingon", accept_language="de") == "en"
    assert normalize("FR_be") == "fr"
    assert tenant_language(None, "CD") == "fr" and tenant_language(None, "AR") == "es"
    assert tenant_language("en", "CD") == "en" and tenant_language(None, "ZZ") == "en"


def test_amounts_never_break_inside_themselves():
    for lang in ("fr", "es", "en"):
        text = localizer(lang).money(Decimal("-1964029.50"), "CDF")
        assert " " not in text, (lang, text)  # only non-breaking spaces (U+00A0, U+202F)
    assert localizer("fr").money("19640.29") == "19\u202f640,29"
    assert localizer("es").money("19640.29") == "19.640,29"
    assert localizer("en").money(1964029, "USD", minor_units=True) == "$19,640.29"


def test_rates_are_percentages():
    assert localizer("fr").percent("0.16") == "16\u00a0%"
    assert localizer("en").percent("0.105") == "10.5%"
    assert localizer("es").percent(None) == "—"


def test_times_are_shown_in_the_outlets_zone():
    moment = datetime(2026, 12, 7, 13, 3, tzinfo=timezone.utc)
    assert localizer("fr").datetime(moment, "Africa/Kinshasa") == "7 déc. 2026, 14:03"
    assert localizer("es").datetime(moment, "America/Argentina/Buenos_Aires") == "7 dic 2026, 10:03"
    assert localizer("en").datetime("2026-12-07T13:03:00Z", None) == "Dec 7, 2026, 1:03\u202fPM"
    assert localizer("en").datetime(moment, "Not/AZone") == "Dec 7, 2026, 1:03\u202fPM"  # unknown zone: UTC
