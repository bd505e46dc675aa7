"""The analytics API over HTTP on SQLite and PostgreSQL, from invoices sealed through the API: its totals are
the Z reports' for the same business days, periods add up, taxes, types, outlets and top buyers, CSV, the 422s,
the cache, and what a till's key and another tenant see."""
from __future__ import annotations

import csv
import io
from collections import Counter
from decimal import Decimal

from stalela.analytics import schemas, service
from tests.analytics.conftest import get
from tests.fiscal.reports.conftest import close, seal

CREDIT = {"type": "FA", "nature": "COR", "lines": [
    {"description": "Retour riz", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "45000"}]}
REDUCED = {"lines": [{"description": "Farine", "item_type": "BIE", "tax_group": "C", "quantity": "3",
                      "unit_price": "12500.50"},
                     {"description": "Transport", "item_type": "SER", "tax_group": "A", "quantity": "1",
                      "unit_price": "7000"}]}
KIN_MARCHE = {"type": "PM", "name": "Kin Marché SARL", "tax_id": "A7654321M"}
MINES = {"type": "PM", "name": "Mines du Kasai SA", "tax_id": "A1234567K"}
MODELS = {"summary": schemas.SummaryOut, "taxes": schemas.TaxesOut, "types": schemas.TypesOut,
          "outlets": schemas.OutletsOut, "buyers/top": schemas.BuyersOut, "authority": schemas.AuthorityOut,
          "forecast": schemas.ForecastOut}


def D(value: str) -> Decimal:  # noqa: N802
    return Decimal(value)


async def _three_days(client, headers, clock, a, b) -> tuple[list[dict], list[dict]]:
    """Three business days on two outlets, closed by Zs, with a credit note and buyers; one invoice sealed after
    the last close (it belongs to the next business day). Returns (the Z reports, every invoice)."""
    zs, invoices = [], []
    for i, day in enumerate(("2026-11-17", "2026-11-18", "2026-11-19")):
        clock.set(f"{day}T10:00:00+01:00")
        sales = [await seal(client, headers, a["id"], buyer=KIN_MARCHE if n % 2 == 0 else None,
                            payments=[{"method": "ESPECES", "amount": "109400"}]) for n in range(i + 1)]
        invoices += sales
        invoices.append(await seal(client, headers, b["id"], buyer=MINES, **REDUCED))
        if i == 1:
            invoices.append(await seal(client, headers, a["id"], original=sales[0]["fiscal_number"], **CREDIT))
        clock.set(f"{day}T20:00:00+01:00")
        zs += [await close(client, headers, a["id"]), await close(client, headers, b["id"])]
    clock.set("2026-11-19T21:00:00+01:00")  # after the 19th was closed: the 20th's
    invoices.append(await seal(client, headers, a["id"], buyer=KIN_MARCHE))
    clock.set("2026-11-20T12:00:00+01:00")
    return zs, invoices


def _z_sums(zs: list[dict]) -> dict[str, dict]:
    """Per business day: the Zs' revenue, counts, VAT; per tax group and per type over all days."""
    days: dict[str, dict] = {}
    for z in zs:
        d = days.setdefault(z["business_day"], {"revenue": D("0"), "vat": D("0"), "invoices": 0, "credit_notes": 0})
        d["revenue"] += D(z["totals"]["total"])
        d["vat"] += sum(D(g["vat"]) for g in z["totals"]["groups"])
        d["invoices"] += z["counts"]["invoices"]
        d["credit_notes"] += z["counts"]["credit_notes"]
    return days


async def test_analytics_totals_equal_the_z_reports_for_the_same_days(client, shop, clock):
    _, headers, (a, b) = shop
    zs, invoices = await _three_days(client, headers, clock, a, b)
    body = await get(client, headers, "summary", **{"from": "2026-11-17", "to": "2026-11-20"})
    schemas.SummaryOut.model_validate(body)
    by_day = {p["start"]: p for p in body["periods"]}
    for day, z in _z_sums(zs).items():
        p = by_day[day]
        assert (D(p["revenue"]), D(p["vat"]), p["invoices"], p["credit_notes"]) == \
            (z["revenue"], z["vat"], z["invoices"], z["credit_notes"]), day
        assert D(p["sales"]) - D(p["credited"]) == D(p["revenue"])
    # The invoice sealed after the 19th's close is in the 20th, as the outlet's open day (its X report) says.
    x = (await client.get(f"/v1/outlets/{a['id']}/x-report", headers=headers)).json()
    assert x["business_day"] == "2026-11-20"
    assert (by_day["2026-11-20"]["revenue"], by_day["2026-11-20"]["invoices"]) == (x["totals"]["total"], 1)

    # Taxes per group over the three closed days: the Zs' groups, summed.
    taxes = await get(client, headers, "taxes", **{"from": "2026-11-17", "to": "2026-11-19"})
    schemas.TaxesOut.model_validate(taxes)
    expected: dict[str, list[Decimal]] = {}
    for z in zs:
        for g in z["totals"]["groups"]:
            acc = expected.setdefault(g["group"], [D("0")] * 3)
            for i, k in enumerate(("amount", "base", "vat")):
                acc[i] += D(g[k])
    assert {t["group"]: [D(t["amount"]), D(t["base"]), D(t["vat"])] for t in taxes["data"]} == expected
    assert {t["group"]: t["rate"] for t in taxes["data"]} == {"A": "0", "B": "0.16", "C": "0.08"}
    # By rate: groups with the same rate together (A's 0 alone here), the totals unchanged.
    by_rate = await get(client, headers, "taxes", by="rate", **{"from": "2026-11-17", "to": "2026-11-19"})
    assert {t["rate"] for t in by_rate["data"]} == {"0", "0.16", "0.08"} and by_rate["totals"] == taxes["totals"]
    assert all(t["group"] is None for t in by_rate["data"])

    # Types: the Zs' counts by type; a credit note's total as the document says.
    types = await get(client, headers, "types", **{"from": "2026-11-17", "to": "2026-11-19"})
    counts: Counter = Counter()
    for z in zs:
        counts.update(z["counts"]["by_type"])
    assert {t["type"]: t["invoices"] for t in types["data"]} == dict(counts)
    fa = next(t for t in types["data"] if t["type"] == "FA")
    assert fa["credit_note"] and fa["total"] == "52200.00"

    # Outlets: each outlet's Zs.
    outlets = await get(client, headers, "outlets", **{"from": "2026-11-17", "to": "2026-11-19"})
    for row in outlets["data"]:
        mine = [z for z in zs if z["outlet_id"] == row["outlet_id"]]
        assert D(row["revenue"]) == sum(D(z["totals"]["total"]) for z in mine)
        assert row["invoices"] == sum(z["counts"]["invoices"] for z in mine)
    assert [r["code"] for r in outlets["data"]] == ["KIN1", "KIN2"]
    # Every figure, every route: the shape the OpenAPI document declares.
    for path, model in MODELS.items():
        model.model_validate(await get(client, headers, path))


async def test_days_weeks_and_months_add_up(client, shop, clock):
    _, headers, (a, b) = shop
    for day in ("2026-10-30", "2026-11-02", "2026-11-08", "2026-11-09", "2026-11-20"):
        clock.set(f"{day}T10:00:00+01:00")
        await seal(client, headers, a["id"])
        await seal(client, headers, b["id"], **REDUCED)
    clock.set("2026-11-20T12:00:00+01:00")
    window = {"from": "2026-10-29", "to": "2026-11-20"}
    answers = {i: await get(client, headers, "summary", interval=i, **window) for i in ("day", "week", "month")}
    for interval, body in answers.items():
        assert body["totals"] == answers["day"]["totals"], interval
        assert sum(D(p["revenue"]) for p in body["periods"]) == D(body["totals"][0]["revenue"])
        assert sum(p["invoices"] for p in body["periods"]) == body["totals"][0]["invoices"] == 10
        # Contiguous, clipped to the range, each day in exactly one period.
        assert body["periods"][0]["start"] == "2026-10-29" and body["periods"][-1]["end"] == "2026-11-20"
    weeks = answers["week"]["periods"]
    assert [(w["start"], w["end"], w["invoices"]) for w in weeks] == [
        ("2026-10-29", "2026-11-01", 2), ("2026-11-02", "2026-11-08", 4), ("2026-11-09", "2026-11-15", 2),
        ("2026-11-16", "2026-11-20", 2)]
    months = answers["month"]["periods"]
    assert [(m["start"], m["end"], m["invoices"]) for m in months] == [
        ("2026-10-29", "2026-10-31", 2), ("2026-11-01", "2026-11-20", 8)]
    # One outlet alone.
    only_b = await get(client, headers, "summary", outlet_id=b["id"], **window)
    assert only_b["outlet_id"] == b["id"] and only_b["totals"][0]["invoices"] == 5
    # A whole month is read from its month rows, a part of one from its day rows: the same sums.
    whole = {"from": "2026-10-01", "to": "2026-11-20"}  # October whole
    cut = [{"from": "2026-10-01", "to": "2026-10-01"}, {"from": "2026-10-02", "to": "2026-11-20"}]
    for path in ("taxes", "types", "outlets"):
        parts = [await get(client, headers, path, **w) for w in cut]
        one = await get(client, headers, path, **whole)
        key = {"taxes": "group", "types": "type", "outlets": "outlet_id"}[path]
        money = {"taxes": "vat", "types": "total", "outlets": "revenue"}[path]
        summed: dict[str, Decimal] = {}
        for part in parts:
            for row in part["data"]:
                summed[row[key]] = summed.get(row[key], D("0")) + D(row[money])
        assert {row[key]: D(row[money]) for row in one["data"]} == summed, path
    months = await get(client, headers, "summary", interval="month", **whole)
    assert [(m["start"], m["invoices"]) for m in months["periods"]] == [("2026-10-01", 2), ("2026-11-01", 8)]


async def test_top_buyers_rank_by_revenue_with_their_names(client, shop, clock, db):
    _, headers, (a, b) = shop
    for _ in range(3):
        await seal(client, headers, a["id"], buyer=KIN_MARCHE)
    await seal(client, headers, b["id"], buyer=KIN_MARCHE)  # the same buyer at another outlet
    big = await seal(client, headers, b["id"], buyer=MINES, lines=[
        {"description": "Ciment", "item_type": "BIE", "tax_group": "B", "quantity": "100", "unit_price": "25000"}])
    await seal(client, headers, b["id"], original=big["fiscal_number"], buyer=MINES, **CREDIT)  # on its outlet
    await seal(client, headers, a["id"])  # no buyer: in the revenue, in no buyer's line
    body = await get(client, headers, "buyers/top", limit=5)
    schemas.BuyersOut.model_validate(body)
    assert (body["from"], body["to"], body["granularity"]) == ("2026-11-01", "2026-11-30", "month")
    first, second = body["data"]
    assert (first["rank"], first["name"], first["tax_id"], first["status"]) == (1, "Mines du Kasai SA", "A1234567K",
                                                                               "active")
    assert (first["invoices"], first["credit_notes"]) == (2, 1)
    assert D(first["revenue"]) == D(big["totals"]["total"]) - D("52200.00")
    assert (second["name"], second["invoices"], D(second["revenue"])) == ("Kin Marché SARL", 4, 4 * D("109400.00"))
    revenue = D((await get(client, headers, "summary", **{"from": "2026-11-01"}))["totals"][0]["revenue"])
    assert abs(first["share"] - float(D(first["revenue"]) / revenue)) < 1e-4
    assert (await get(client, headers, "buyers/top", limit=1))["data"][0]["subject_id"] == first["subject_id"]


async def test_csv_on_every_route(client, shop, clock):
    _, headers, (a, _) = shop
    await seal(client, headers, a["id"], buyer={"type": "PM", "name": "=HYPERLINK(\"x\")", "tax_id": "A1111111B"})
    for path in MODELS:
        r = await client.get(f"/v1/analytics/{path}", params={"format": "csv"}, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), (path, r.text)
        assert "attachment" in r.headers["content-disposition"] and ".csv" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        json_body = await get(client, headers, path)
        if path == "summary":
            assert len(rows) == len(json_body["periods"]) and rows[-1]["revenue"] == json_body["periods"][-1]["revenue"]
        if path == "buyers/top":  # a name a spreadsheet would run as a formula is quoted
            assert rows[0]["name"] == "'=HYPERLINK(\"x\")" and json_body["data"][0]["name"] == "=HYPERLINK(\"x\")"
    by_accept = await client.get("/v1/analytics/types", headers={**headers, "Accept": "text/csv"})
    assert by_accept.headers["content-type"].startswith("text/csv")
    assert by_accept.text.splitlines()[0] == "currency,type,credit_note,invoices,total,base,vat"


async def test_bad_parameters_are_422_naming_the_field(client, shop):
    _, headers, _ = shop
    cases = [("summary", {"from": "2026-11-20", "to": "2026-11-01"}, "from", "analytics_range_invalid"),
             ("summary", {"from": "2020-01-01", "to": "2026-11-01"}, "to", "analytics_range_too_long"),
             ("summary", {"interval": "year"}, "interval", None),
             ("summary", {"from": "2026-02-30"}, "from", None),
             ("taxes", {"by": "colour"}, "by", None),
             ("buyers/top", {"limit": "0"}, "limit", None),
             ("buyers/top", {"limit": "101"}, "limit", None),
             ("forecast", {"months": "1"}, "months", None),
             ("forecast", {"method": "arima"}, "method", None),
             ("types", {"format": "xlsx"}, "format", None),
             ("outlets", {"outlet_id": "out_nope"}, "outlet_id", "outlet_not_found"),
             ("authority", {"outlet_id": "bad id!"}, "outlet_id", None)]
    for path, params, field, code in cases:
        r = await client.get(f"/v1/analytics/{path}", params=params, headers=headers)
        assert r.status_code == 422, (path, params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["field"] == field, (path, params, problem)
        if code:
            assert problem["code"] == code


async def test_a_new_seal_is_seen_at_once_despite_the_cache(client, shop, clock):
    _, headers, (a, _) = shop
    await seal(client, headers, a["id"])
    first = await get(client, headers, "summary")
    assert first["totals"][0]["invoices"] == 1
    assert await get(client, headers, "summary") == first  # the same answer (the clock stands still)
    assert len(service.cache._items) == 1  # from the cache
    await seal(client, headers, a["id"])
    assert (await get(client, headers, "summary"))["totals"][0]["invoices"] == 2


async def test_a_tills_key_reads_its_outlet_only_and_other_tenants_nothing(client, shop, new_tenant, clock):
    _, headers, (a, b) = shop
    await seal(client, headers, a["id"])
    await seal(client, headers, b["id"], buyer=MINES)
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": a["id"], "scopes": ["reports"]},
                              headers=headers)).json()
    till_headers = {"Authorization": f"Bearer {till['api_key']}"}
    mine = await get(client, till_headers, "summary")
    assert mine["totals"][0]["invoices"] == 1
    assert [o["outlet_id"] for o in (await get(client, till_headers, "outlets"))["data"]] == [a["id"]]
    refused = await client.get("/v1/analytics/buyers/top", headers=till_headers)  # buyers are the whole tenant's
    assert refused.status_code == 403 and refused.json()["code"] == "api_key_outlet_restricted"
    refused = await client.get("/v1/analytics/summary", params={"outlet_id": b["id"]}, headers=till_headers)
    assert refused.status_code == 403 and refused.json()["code"] == "api_key_outlet_restricted"
    # Another tenant: its own (empty) figures; the first tenant's outlet is not one of its own.
    _, other = await new_tenant("Autre SARL", "A0000009Z")
    for path in MODELS:
        body = await get(client, other, path)  # its own figures: none
        assert b["id"] not in str(body) and a["id"] not in str(body) and "Mines" not in str(body)
    assert (await get(client, other, "summary"))["totals"][0]["invoices"] == 0
    r = await client.get("/v1/analytics/summary", params={"outlet_id": a["id"]}, headers=other)
    assert r.status_code == 422 and r.json()["code"] == "outlet_not_found"
    # A cashier has no reports:read: refused like the reports.
    cashier_key = (await client.post("/v1/api-keys", json={"name": "pos", "scopes": ["invoices:write"]},
                                     headers=headers)).json()
    r = await client.get("/v1/analytics/summary", headers={"Authorization": f"Bearer {cashier_key['api_key']}"})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_permissions"
