"""Keeping the catalogs whole: which strings the code and templates use, and which a language lacks.

``python -m stalela.i18n.catalogs check`` lists every msgid a template or a ``gettext`` call uses
that a shipped language's catalogs do not translate (``tests/i18n`` fails on any);
``python -m stalela.i18n.catalogs add <file>`` appends those missing ones, empty, to
``locales/<lang>/LC_MESSAGES/<file>.po`` of every language, ready to be translated
(``make i18n``). Babel's own ``pybabel update`` keeps one catalog per domain; ours are split by area
and merged at load time (``stalela.i18n.translations``), hence this small tool.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from stalela.i18n import LANGUAGES, LOCALES_DIR, SOURCE
from stalela.i18n.jinja import JINJA_OPTIONS

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # src/stalela
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
            "npgettext": ((1, "c"), 2, 3), "N_": None, "NP_": ((1, "c"), 2)}
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**.html": {"trimmed": "true", "extensions": ",".join(JINJA_OPTIONS["extensions"]),
                                     "trim_blocks": "true", "lstrip_blocks": "true"}}


@dataclass(frozen=True)
class Message:
    msgid: str | tuple[str, str]
    context: str | None
    where: str


def used_messages() -> list[Message]:
    """Every translatable string of the package's templates and Python sources."""
    found: list[Message] = []
    for filename, lineno, message, _comments, context in extract_from_dir(
            PACKAGE_DIR, METHODS, OPTIONS, KEYWORDS, comment_tags=("Translators:",)):
        if filename.startswith("i18n/"):
            continue  # this package's docstrings and examples
        found.append(Message(message, context, f"{filename}:{lineno}"))
    return found


def catalog(lang: str) -> dict[tuple[str, str | None], str]:
    """A language's translations (every file), keyed by (msgid, context); fuzzy entries excluded."""
    merged: dict[tuple[str, str | None], str] = {}
    for path in sorted((LOCALES_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            for m in read_po(f, locale=lang):
                if not m.id or m.fuzzy:
                    continue
                msgid = m.id[0] if isinstance(m.id, tuple) else m.id
                text = m.string[0] if isinstance(m.string, tuple) else m.string
                if text:
                    merged[(msgid, m.context)] = text
    return merged


def missing(lang: str, messages: list[Message] | None = None) -> list[Message]:
    if lang == SOURCE:
        return []
    known = catalog(lang)
    out, seen = [], set()
    for m in messages if messages is not None else used_messages():
        msgid = m.msgid[0] if isinstance(m.msgid, tuple) else m.msgid
        key = (msgid, m.context)
        if key not in known and key not in seen:
            seen.add(key)
            out.append(m)
    return out


def add_missing(area: str, messages: list[Message] | None = None) -> int:
    """Append every missing msgid (of ``messages``, by default every used one), untranslated, to each
    language's ``<area>.po``; returns how many."""
    messages, added = used_messages() if messages is None else messages, 0
    for lang in LANGUAGES:
        if lang == SOURCE:
            continue
        path = LOCALES_DIR / lang / "LC_MESSAGES" / f"{area}.po"
        if path.exists():
            with path.open("rb") as f:
                po = read_po(f, locale=lang)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Plural forms are CLDR's, from the locale (French has three: "1", "1 000 000", the rest).
            po = Catalog(locale=lang, project="Stalela", version="1", fuzzy=False,
                         copyright_holder="Stalela", msgid_bugs_address="")
        for m in missing(lang, messages):
            if po.get(m.msgid if isinstance(m.msgid, str) else m.msgid[0], m.context) is None:
                po.add(m.msgid, "" if isinstance(m.msgid, str) else ("", ""), locations=[(m.where, None)],
                       context=m.context)
                added += 1
        with path.open("wb") as f:
            write_po(f, po, width=100, sort_output=True, include_lineno=False)
    return added


def check(messages: list[Message] | None = None) -> int:
    """Print what each language lacks of ``messages`` (by default every used one); 1 if anything."""
    messages, bad = used_messages() if messages is None else messages, 0
    for lang in LANGUAGES:
        for m in missing(lang, messages):
            bad += 1
            print(f"{lang}\t{m.where}\t{m.context or ''}\t{m.msgid!r}")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["add"] and len(argv) == 2:
        print(f"{add_missing(argv[1])} entries added")
        return 0
    if argv[:1] == ["check"]:
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
