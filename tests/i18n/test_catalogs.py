"""Every string a reader can see exists in every shipped language."""
from __future__ import annotations

import re

import pytest

from stalela.i18n import LANGUAGES, SOURCE, localizer
from stalela.i18n.catalogs import catalog, missing, used_messages

_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")


@pytest.fixture(scope="module")
def messages():
    return used_messages()


def test_the_sources_use_translatable_strings(messages):
    # Guards the extraction itself: were it to find nothing, every other test here would pass vacuously.
    assert len(messages) > 100
    assert any(m.where.startswith("dashboard/templates/") for m in messages)


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != SOURCE])
def test_every_template_and_gettext_string_is_translated(lang, messages):
    gaps = missing(lang, messages)
    assert not gaps, "\n".join(f"{m.where}: {m.msgid!r}" for m in gaps[:40]) + \
        f"\n({len(gaps)} missing; `make i18n` adds them to a catalog for translation)"


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != SOURCE])
def test_translations_keep_their_placeholders(lang):
    for (msgid, _context), text in catalog(lang).items():
        assert sorted(_PLACEHOLDER.findall(msgid)) == sorted(_PLACEHOLDER.findall(text)), (lang, msgid, text)


def test_a_translation_is_used_at_run_time():
    assert localizer("fr").gettext("Invoices") != "Invoices"
    assert localizer("es").gettext("Invoices") != "Invoices"
    assert localizer("en").gettext("Invoices") == "Invoices"
