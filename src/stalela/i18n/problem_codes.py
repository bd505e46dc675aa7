"""Every stable error code of the service, found in its source, and the catalog sentences they need.

An error's ``detail`` is translated by its code (``stalela.i18n.problems``), so each code needs one
sentence per language in ``errors.po`` (``msgctxt "problem"``, the code as msgid) and each error
class's ``title`` one too (``msgctxt "problem title"``). Codes are not ``gettext`` calls, so Babel's
extraction cannot find them; this module reads the source's syntax tree instead, the way a reader
would find them:

- ``code="…"`` (and ``invalid_code=``, ``precision_code=``, ``too_large_code=``, ``error_code=``)
  arguments, and such parameters' string defaults;
- ``code = "…"`` and ``title = "…"`` in a class body (the error classes), ``code = "…"`` elsewhere;
- the code argument of ``fail(code, field, detail)``, ``FiscalRuleViolation(code, …)``,
  ``FieldError(field, code, detail)``, ``_refuse(field, code, detail)`` (the jurisdictions' rules) and
  ``PydanticCustomError(code, …)`` (our own schema checks);
- the values of code tables: dicts assigned to ``code``/``codes``/``*_CODES``, ``ITEM_TYPES``'s
  ``(groups, code)`` pairs;
- URL checks' ``code_prefix="…"`` joined with every ``kind`` their refusals name (``kit/netguard.py``).

Pydantic's input errors are not codes of ours: their sentences are ``NP_`` marks in
``kit/problems.py``, which Babel's extraction finds like any string.

``python -m stalela.i18n.problem_codes check`` lists what a language lacks; ``… add`` appends the
missing entries, empty, to ``errors.po`` of every language (``make i18n AREA=errors`` runs both).
"""
from __future__ import annotations

import ast
import re
import sys

from stalela.i18n import catalogs
from stalela.i18n.catalogs import PACKAGE_DIR, Message
from stalela.i18n.problems import CODE_CONTEXT, TITLE_CONTEXT

AREA = "errors"
_CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_CODE_KEYWORDS = {"code", "invalid_code", "precision_code", "too_large_code", "error_code"}
# callee name -> the position of its code argument
_CODE_POSITIONS = {"fail": 0, "FiscalRuleViolation": 0, "FieldError": 1, "_refuse": 1, "PydanticCustomError": 0}
_TABLE_NAMES = re.compile(r"^(code|codes|[A-Z_]*_CODES|ITEM_TYPES)$")
_NOT_ERRORS = {"main"}  # a series' code (fiscal/invoices/repository.py), not an error's
# Where the code is not ours: simulators answer with the authority's codes, not Stalela's.
_SKIP = ("authority/simulator/", "i18n/")
# The 4xx answers Starlette raises itself (app.py names their codes; the titles are its reasons).
HTTP_TITLES = ("Method not allowed",)


def _strings(node: ast.AST | None) -> list[str]:
    """The string constants a value can be: ``"a"``, ``"a" if x else "b"``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _table(node: ast.AST) -> list[str]:
    """The codes of a table: a dict's values (or the last item of tuple values), through ``.get``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        node = node.func.value  # {…}.get(key, default)
    if isinstance(node, ast.Call) and node.args:
        node = node.args[0]  # MappingProxyType({…})
    if not isinstance(node, ast.Dict):
        return []
    out = []
    for value in node.values:
        out += _strings(value.elts[-1] if isinstance(value, ast.Tuple) and value.elts else value)
    return out


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.codes: set[str] = set()
        self.titles: set[str] = set()
        self.prefixes: set[str] = set()
        self.kinds: set[str] = set()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for statement in node.body:
            target, value = None, None
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target, value = statement.targets[0], statement.value
            elif isinstance(statement, ast.AnnAssign):
                target, value = statement.target, statement.value
            if isinstance(target, ast.Name) and target.id == "title" and any(_is_error(b) for b in node.bases):
                self.titles.update(_strings(value))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if isinstance(target, ast.Attribute) and target.attr in _CODE_KEYWORDS:  # row.error_code = "…"
                self.codes.update(_strings(node.value))
            if isinstance(target, ast.Name) and target.id == "code":
                self.codes.update(_strings(node.value))
            if isinstance(target, ast.Name) and _TABLE_NAMES.match(target.id):
                self.codes.update(_table(node.value))
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if isinstance(node.target, ast.Name) and node.value is not None:
            if node.target.id == "code":
                self.codes.update(_strings(node.value))
            elif _TABLE_NAMES.match(node.target.id):
                self.codes.update(_table(node.value))
        self.generic_visit(node)

    def visit_arguments(self, node: ast.arguments) -> None:
        positional = node.posonlyargs + node.args
        pairs = list(zip(positional[len(positional) - len(node.defaults):], node.defaults))
        pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
        for arg, default in pairs:
            if arg.arg in _CODE_KEYWORDS:
                self.codes.update(set(_strings(default)) - _NOT_ERRORS)
            elif arg.arg == "code_prefix":
                self.prefixes.update(_strings(default))
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name == "refuse":  # a URL refusal's default kind
            args = node.args.args
            for arg, default in zip(args[len(args) - len(node.args.defaults):], node.args.defaults):
                if arg.arg == "kind":
                    self.kinds.update(_strings(default))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for keyword in node.keywords:
            if keyword.arg in _CODE_KEYWORDS:
                self.codes.update(_strings(keyword.value))
            elif keyword.arg == "code_prefix":
                self.prefixes.update(_strings(keyword.value))
        name = _callee(node)
        position = _CODE_POSITIONS.get(name)
        if position is not None and len(node.args) > position:
            self.codes.update(_strings(node.args[position]))
        # A URL refusal: refuse(detail, kind) or _refuser(field, prefix)(detail, kind).
        if (name == "refuse" or isinstance(node.func, ast.Call) and _callee(node.func) == "_refuser") \
                and len(node.args) > 1:
            self.kinds.update(_strings(node.args[1]))
        self.generic_visit(node)


_ERROR_BASES = {"StalelaError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "PayloadTooLarge",
                "UnsupportedMediaType", "ValidationFailed", "TooManyRequests", "ServiceUnavailable"}


def _is_error(base: ast.expr) -> bool:
    return isinstance(base, ast.Name) and (base.id.endswith(("Error", "Exception", "Violation"))
                                           or base.id in _ERROR_BASES)


def _find() -> _Finder:
    finder = _Finder()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        where = path.relative_to(PACKAGE_DIR).as_posix()
        if where.startswith(_SKIP):
            continue
        finder.visit(ast.parse(path.read_text(encoding="utf-8"), filename=where))
    return finder


def source_codes() -> set[str]:
    """Every error code the service's source can raise or record."""
    finder = _find()
    codes = finder.codes | {f"{prefix}_{kind}" for prefix in finder.prefixes for kind in finder.kinds}
    return {code for code in codes if _CODE.match(code)}


def source_titles() -> set[str]:
    return _find().titles | set(HTTP_TITLES)


def wanted() -> list[Message]:
    """Every sentence the errors catalog must hold: one per code, one per title."""
    return [Message(code, CODE_CONTEXT, "error code") for code in sorted(source_codes())] + \
        [Message(title, TITLE_CONTEXT, "error title") for title in sorted(source_titles())]


def missing(lang: str) -> list[Message]:
    return catalogs.missing(lang, wanted())


def add_missing() -> int:
    return catalogs.add_missing(AREA, wanted())


def main(argv: list[str]) -> int:
    if argv == ["add"]:
        print(f"{add_missing()} entries added")
        return 0
    if argv == ["check"]:
        return catalogs.check(wanted())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
