"""An error's title and detail in the reader's language; its ``code`` never changes.

Details are written in English where they are raised, often with values in them, so they cannot be
catalog keys as they are. A detail is translated, in order: as a whole when the catalog knows it
(constant details), else by its code (``pgettext("problem", code)``: one sentence per stable code,
maintained in ``locales/*/LC_MESSAGES/errors.po``), else left in English. The offending ``field`` and
the code travel in the problem's own members, so a translated sentence loses nothing a client needs.
"""
from __future__ import annotations

from stalela.i18n import SOURCE, Localizer

TITLE_CONTEXT = "problem title"
CODE_CONTEXT = "problem"


def localize(l10n: Localizer, *, code: str, title: str, detail: str) -> tuple[str, str]:
    """``(title, detail)`` in ``l10n``'s language."""
    if l10n.lang == SOURCE:
        return title, detail
    if l10n.has(title, TITLE_CONTEXT):
        title = l10n.pgettext(TITLE_CONTEXT, title)
    if detail and l10n.has(detail):
        detail = l10n.gettext(detail)
    elif l10n.has(code, CODE_CONTEXT):
        detail = l10n.pgettext(CODE_CONTEXT, code)
    return title, detail
