"""Analytics answers as CSV: one table per answer, the same figures as its JSON, a header row first."""
from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterable

MEDIA_TYPE = "text/csv; charset=utf-8"
# A cell a spreadsheet would run as a formula (a buyer's name is the merchant's customer's text): quoted
# with a leading apostrophe. Numbers (money, "-3.00") are left as they are.
_FORMULA = re.compile(r"^[=+\-@\t\r]")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.match(value):
        return "'" + value
    return value


def table(columns: list[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(columns)
    for row in rows:
        out.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue().encode()


_FIGURES = ["invoices", "credit_notes", "sales", "credited", "revenue", "vat"]


def _authority_days(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["days"]


def _forecast_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for f in body["data"]:
        predicted = {p["month"]: p["predicted"] for p in f["backtest"]["points"]}
        rows += [{"currency": f["currency"], "month": h["month"], "kind": "actual", "revenue": h["revenue"],
                  "predicted": predicted.get(h["month"])} for h in f["history"]]
        rows.append({"currency": f["currency"], "month": body["month"], "kind": "forecast", "revenue": None,
                     "predicted": f["forecast"]})
    return rows


# name -> (columns, the rows of the answer)
TABLES = {
    "summary": (["start", "end", "currency", *_FIGURES], lambda b: b["periods"]),
    "taxes": (["currency", "group", "rate", "invoices", "amount", "base", "vat"], lambda b: b["data"]),
    "types": (["currency", "type", "credit_note", "invoices", "total", "base", "vat"], lambda b: b["data"]),
    "outlets": (["outlet_id", "code", "name", "currency", *_FIGURES], lambda b: b["data"]),
    "buyers": (["rank", "currency", "subject_id", "name", "tax_id", "status", "invoices", "credit_notes", "revenue",
                "share"], lambda b: b["data"]),
    "authority": (["day", "acknowledged", "failed", "rejected"], _authority_days),
    "forecast": (["currency", "month", "kind", "revenue", "predicted"], _forecast_rows),
}


def to_csv(name: str, body: dict[str, Any]) -> bytes:
    columns, rows = TABLES[name]
    return table(columns, rows(body))


def filename(name: str, body: dict[str, Any]) -> str:
    span = f"{body['from']}_{body['to']}" if "from" in body else body.get("month", "")
    return f"stalela-analytics-{name}-{span}.csv"
