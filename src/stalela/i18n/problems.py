"""An error's title and detail in the reader's language; its ``code`` never changes.

Details are written in English where they are raised, often with values in them, so they cannot be
catalog keys as they are. A detail is translated, in order: as a whole when the catalog knows it
(constant details), else by its code (``pgettext("problem", code)``: one sentence per stable code,
maintained in ``locales/*/LC_MESSAGES/errors.po``), else left in English. The offending ``field`` and
the code travel in the problem's own members, so a translated sentence loses nothing a client needs.
``stalela.i18n.problem_codes`` finds every code in the source, and its test fails on a code that
lacks a sentence.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stalela.i18n import SOURCE, Localizer

TITLE_CONTEXT = "problem title"
CODE_CONTEXT = "problem"


def localize(l10n: Localizer, *, code: str, title: str, detail: str) -> tuple[str, str]:
    """``(title, detail)`` in ``l10n``'s language."""
    if l10n.lang == SOURCE:
        return title, detail
    if title and l10n.has(title, TITLE_CONTEXT):
        title = l10n.pgettext(TITLE_CONTEXT, title)
    if detail and l10n.has(detail):
        detail = l10n.gettext(detail)
    elif l10n.has(code, CODE_CONTEXT):
        detail = l10n.pgettext(CODE_CONTEXT, code)
    return title, detail


def sentence(l10n: Localizer, msgid: str, values: Mapping[str, Any] | None) -> str | None:
    """A ``problem`` sentence with its ``%(name)s`` values filled in; ``None`` when one is missing.

    The values come from the error (pydantic's ``ctx``): a sentence naming one the error lacks is not
    shown with a raw placeholder.
    """
    text = l10n.translations.pgettext(CODE_CONTEXT, msgid)
    if "%(" not in text:
        return text
    try:
        return text % {name: str(value) for name, value in (values or {}).items()}
    except (KeyError, ValueError, TypeError):
        return None
