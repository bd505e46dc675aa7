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


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != SOURCE])
def test_a_string_reads_the_same_in_every_area(lang):
    # A language's area files are merged into one catalog: a msgid two areas translate differently
    # would read as whichever file loads last, on every screen. Give it a context if it must differ.
    from babel.messages.pofile import read_po

    from stalela.i18n import LOCALES_DIR

    seen: dict[tuple, tuple[str, object]] = {}
    conflicts = []
    for path in sorted((LOCALES_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            for m in read_po(f, locale=lang):
                if not m.id:
                    continue
                key = (m.id if isinstance(m.id, str) else m.id[0], m.context)
                if key in seen and seen[key][1] != m.string:
                    conflicts.append(f"{key}: {seen[key][0]} {seen[key][1]!r} / {path.stem} {m.string!r}")
                seen.setdefault(key, (path.stem, m.string))
    assert not conflicts, "\n".join(conflicts)
