"""What every ``stalela`` command prints, and how it exits (docs/cli.md).

- Results go to **stdout**: with ``--json``, one JSON document; otherwise plain lines, the secret a
  command creates (an API key, a password) alone on its line, so ``KEY=$(stalela apikey create …)``
  captures exactly it.
- Diagnostics (what was done, warnings, errors, progress bars) go to **stderr**.
- Neither stream is wrapped: rich's consoles here soft-wrap (a long value stays on one line when piped,
  and a terminal wraps it itself), and they print colour only to a terminal without ``NO_COLOR``.
- Exit codes are the constants below, the same table as docs/cli.md.
- An error from a problem code is printed in the operator's language when ``LC_ALL``,
  ``LC_MESSAGES`` or ``LANG`` names French or Spanish (the API's translations, errors.po); the rest
  of the CLI speaks English, an operators' tool.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1  # the operation was refused or failed, or a check found a problem (verify: invalid)
EXIT_USAGE = 2  # the command line is wrong: an unknown option, a malformed value, input refused as invalid
EXIT_UNAVAILABLE = 3  # something it needs is away (database, key store, storage, authority): retry later

# stdout for results, stderr for everything else; rich reads NO_COLOR, TERM and isatty itself.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def language() -> str:
    """The operator's language from the POSIX locale variables (``fr_CD.UTF-8`` → ``fr``), else English."""
    from stalela.i18n import SOURCE, normalize

    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:  # the first one set decides, as for every POSIX program
            return normalize(value.split(".", 1)[0].split("@", 1)[0]) or SOURCE
    return SOURCE


def emit(data: Any, as_json: bool, lines: list[str] | str = ()) -> None:
    """A command's result on stdout: ``data`` as one JSON document, else ``lines`` as they are."""
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, indent=2, ensure_ascii=False) + "\n")
    else:
        for line in [lines] if isinstance(lines, str) else lines:
            sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def note(message: str, *, markup: bool = True) -> None:
    """A diagnostic on stderr (rich markup allowed: ``[red]…[/red]``)."""
    err.print(message, markup=markup)


def usage(message: str) -> NoReturn:
    """The command line is wrong: say so on stderr and exit 2 (as typer does for its own checks)."""
    err.print(f"[red]error[/red] {_escape(message)}")
    raise typer.Exit(EXIT_USAGE)


def exit_code(error: BaseException) -> int:
    """The exit code of an error the service raised: by its HTTP status, as the API answers it."""
    from pydantic import ValidationError

    from stalela.errors import StalelaError

    if isinstance(error, ValidationError):
        return EXIT_USAGE
    if isinstance(error, StalelaError):
        if error.status in (400, 413, 415, 422):
            return EXIT_USAGE
        if error.status == 503:
            return EXIT_UNAVAILABLE
        return EXIT_FAILED
    return EXIT_FAILED


def fail(error: BaseException) -> NoReturn:
    """Print a refusal (a ``StalelaError`` or pydantic's ``ValidationError``) on stderr and exit.

    Anything else is a bug nobody typed: it propagates with its traceback (exit 1).
    """
    raise typer.Exit(report(error)) from None


def report(error: BaseException) -> int:
    """Print a refusal on stderr, in the operator's language; its exit code. Re-raises anything else."""
    from pydantic import ValidationError

    from stalela.errors import StalelaError, validation_problem

    if isinstance(error, ValidationError):
        problem: StalelaError = validation_problem(error.errors())
    elif isinstance(error, StalelaError):
        problem = error
    else:
        raise error
    for line in problem_lines(problem, language()):
        err.print(f"[red]error[/red] {_escape(line)}")
    return exit_code(error)


class Typer(typer.Typer):
    """The root app: a refusal no command caught (the database away, a rule) still ends as one line on
    stderr and its exit code, never a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from stalela.errors import StalelaError

        try:
            return super().__call__(*args, **kwargs)
        except (StalelaError, ValidationError) as exc:
            sys.exit(report(exc))


def problem_lines(problem: Any, lang: str) -> list[str]:
    """``code (field): detail`` for the problem, then one line per offending field."""
    from stalela.i18n import localizer
    from stalela.kit.problems import localized_problem

    body = localized_problem(problem, localizer(lang))
    entries = body.get("errors") or []
    if len(entries) > 1 or (entries and body["code"] == "validation_failed"):
        return [f"{e['field']}: {e['detail']} ({e['code']})" for e in entries]
    where = f" ({body['field']})" if body.get("field") else ""
    return [f"{body['code']}{where}: {body['detail']}"]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
