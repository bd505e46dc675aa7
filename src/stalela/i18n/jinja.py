"""Jinja templates in every shipped language: one environment per language.

One environment per language (not one whose gettext is swapped per request): FastAPI renders sync
endpoints in a thread pool, so a shared environment's installed translations would race. Templates
use ``{% trans %}…{% endtrans %}`` (whitespace trimmed) and ``_("…")``; filters that depend on the
language (``money``, ``when``, ``percent``, ``duration``…) read the environment's ``i18n`` global, the
``Localizer`` of that language.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from jinja2 import Environment, FileSystemLoader, pass_environment, select_autoescape

from stalela.i18n import LANGUAGE_NAMES, LANGUAGES, Localizer, localizer, normalize

# Shared by the environments and by the extraction (stalela.i18n.catalogs): both must trim alike,
# or an extracted msgid would not be the one looked up.
JINJA_OPTIONS: dict[str, Any] = {"trim_blocks": True, "lstrip_blocks": True,
                                 "extensions": ["jinja2.ext.i18n"]}


def _l10n(env: Environment) -> Localizer:
    return env.globals["i18n"]  # type: ignore[return-value]


@pass_environment
def _money(env: Environment, value: Any, currency: str | None = None, minor_units: bool = False) -> str:
    return _l10n(env).money(value, currency, minor_units=minor_units)


@pass_environment
def _number(env: Environment, value: Any, digits: int | None = None) -> str:
    return _l10n(env).number(value, digits)


@pass_environment
def _percent(env: Environment, value: Any) -> str:
    return _l10n(env).percent(value)


@pass_environment
def _when(env: Environment, value: Any, tz: str | None = None, seconds: bool = False) -> str:
    return _l10n(env).datetime(value, tz, seconds=seconds)


@pass_environment
def _day(env: Environment, value: Any, form: str = "medium") -> str:
    return _l10n(env).date(value, form)


@pass_environment
def _duration(env: Environment, seconds: float | None) -> str:
    return _l10n(env).duration(seconds)


LOCALIZED_FILTERS: dict[str, Callable[..., str]] = {
    "money": _money, "number": _number, "percent": _percent, "when": _when, "day": _day, "duration": _duration,
}


class LocalizedTemplates:
    """The templates of one directory (or a search path of several), in each shipped language."""

    def __init__(self, directory: Path | Sequence[Path], *, filters: dict[str, Callable[..., Any]] | None = None,
                 globals: dict[str, Any] | None = None) -> None:  # noqa: A002 (Jinja's own word)
        self._envs: dict[str, Environment] = {}
        for lang in LANGUAGES:
            env = Environment(loader=FileSystemLoader(directory), autoescape=select_autoescape(["html"]),
                              **JINJA_OPTIONS)
            env.policies["ext.i18n.trimmed"] = True
            l10n = localizer(lang)
            env.install_gettext_callables(  # type: ignore[attr-defined]
                l10n.translations.gettext, l10n.translations.ngettext, newstyle=True,
                pgettext=l10n.translations.pgettext, npgettext=l10n.translations.npgettext)
            env.filters.update(LOCALIZED_FILTERS)
            env.globals.update(i18n=l10n, lang=lang, LANGUAGES=LANGUAGES, LANGUAGE_NAMES=LANGUAGE_NAMES)
            self._envs[lang] = env
        self.update(filters=filters or {}, globals=globals or {})

    def update(self, *, filters: dict[str, Callable[..., Any]] | None = None,
               globals: dict[str, Any] | None = None) -> None:  # noqa: A002
        for env in self._envs.values():
            env.filters.update(filters or {})
            env.globals.update(globals or {})

    def env(self, lang: str | None) -> Environment:
        return self._envs[normalize(lang) or "en"]

    def render(self, lang: str | None, name: str, **context: Any) -> str:
        return self.env(lang).get_template(name).render(**context)
