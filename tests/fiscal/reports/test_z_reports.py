"""Z and X reports over HTTP on SQLite and PostgreSQL: the seal, the chain, business days, closing rules,
the race to close, the scheduler, the cached figures, and the public verification page."""
from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from stalela.fiscal.core.reports import Figures
from stalela.fiscal.ledger.models import Checkpoint
from stalela.fiscal.reports import service
from stalela.fiscal.invoices.models import DayFigures
from stalela.fiscal.reports.models import ZReport
from stalela.fiscal.reports.tasks import close_due_days, due_days
from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_tenant
from tests.fiscal.reports.conftest import close, seal
from tests.support.verify import verify_seal_independently

CREDIT = {"type": "FA", "nature": "COR", "lines": [
    {"description": "Retour riz", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "45000"}]}


def signed_sum(invoices: list[dict], key: str = "total") -> Decimal:
    return sum((Decimal(i["totals"][key]) * (-1 if i["type"] in ("FA", "EA") else 1) for i in invoices), Decimal(0))


async def test_z_report_matches_its_invoices_and_verifies(client, shop, db):
    tenant, headers, outlet = shop
    sales = [await seal(client, headers, outlet["id"], payments=[{"method": "ESPECES", "amount": "109400"}])
             for _ in range(3)]
    credit = await seal(client, headers, outlet["id"], original=sales[0]["fiscal_number"], **CREDIT)
    invoices = [*sales, credit]

    z = await close(client, headers, outlet["id"])
    p = z["seal"]["payload"]
    assert (p["report"], p["z_counter"], p["number"], z["object"]) == ("Z", 1, "KIN1-Z-000001", "z_report")
    assert p["prev_hash"] == "0" * 64 and p["tenant_id"] == tenant["id"] and p["outlet_id"] == outlet["id"]
    assert (p["business_day"], p["timezone"]) == ("2026-11-20", "Africa/Kinshasa")  # the shop's clock: noon
    assert Decimal(p["totals"]["total"]) == signed_sum(invoices) == Decimal("276000.00")
    assert p["totals"] == z["totals"]
    assert set(p["totals"]) == {"groups", "total", "vat_settled_by_credit", "payable"}  # an invoice's shape
    assert p["sales"]["total"] == "328200.00" and p["credit_notes"]["total"] == "52200.00"
    assert p["counts"] == {"invoices": 4, "credit_notes": 1, "by_type": {"FA": 1, "FV": 3}}
    assert p["payments"] == [{"method": "ESPECES", "amount": "328200.00"}]  # the credit note had none
    assert (p["first_counter"], p["last_counter"]) == (1, 4)
    assert p["grand_totals"]["totals"] == p["totals"]

    jwk = (await client.get(f"/v1/keys/{z['seal']['key_id']}")).json()
    verify_seal_independently(z["seal"], jwk)
    assert (await client.get(f"/v1/z-reports/{z['id']}", headers=headers)).json() == z

    # The checkpoint taken at the close is a real, signed one of the tenant's log.
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, tenant["id"])
        cp = (await s.execute(select(Checkpoint).where(Checkpoint.id == p["checkpoint"]["id"]))).scalar_one()
        events = (await s.execute(select(OutboxEvent).where(OutboxEvent.topic == "report.z_closed"))).scalars().all()
    assert cp.reason == "z_report" and cp.tree_size == 4 == p["checkpoint"]["tree_size"]
    assert cp.root_hash == p["checkpoint"]["root_hash"] and cp.seal_hash == p["checkpoint"]["hash"]
    assert [json.loads(e.payload)["z_report_id"] for e in events] == [z["id"]]

    # Closing again is idempotent: the same Z, 200, no second event.
    again = await close(client, headers, outlet["id"], expect=200)
    assert again == z


async def test_z_chain_grand_totals_and_business_days(client, shop, clock):
    _, headers, outlet = shop
    clock.set("2026-11-20T10:00:00+01:00")
    first_day = [await seal(client, headers, outlet["id"]) for _ in range(2)]
    clock.set("2026-11-20T18:00:00+01:00")
    z1 = await close(client, headers, outlet["id"])
    assert z1["business_day"] == "2026-11-20" and z1["counts"]["invoices"] == 2

    # Sealed after the close: it belongs to the next business day, whatever its date.
    clock.set("2026-11-20T19:00:00+01:00")
    late = await seal(client, headers, outlet["id"])
    x = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    assert x["business_day"] == "2026-11-21" and x["counts"]["invoices"] == 1
    assert x["seal"]["payload"]["report"] == "X" and x["seal"]["payload"]["z_counter"] is None
    assert x["grand_totals"]["counts"]["invoices"] == 3
    assert (await close(client, headers, outlet["id"], expect=200))["id"] == z1["id"]  # today: already closed

    clock.set("2026-11-21T12:00:00+01:00")
    more = [await seal(client, headers, outlet["id"]) for _ in range(2)]
    clock.set("2026-11-21T20:00:00+01:00")
    z2 = await close(client, headers, outlet["id"])
    assert z2["business_day"] == "2026-11-21" and z2["z_counter"] == 2 and z2["number"] == "KIN1-Z-000002"
    assert z2["seal"]["payload"]["prev_hash"] == z1["seal"]["hash"]
    assert (z2["first_counter"], z2["last_counter"]) == (3, 5)
    assert Decimal(z2["totals"]["total"]) == signed_sum([late, *more])
    assert Decimal(z2["grand_totals"]["totals"]["total"]) == signed_sum([*first_day, late, *more])
    assert z2["grand_totals"]["counts"]["invoices"] == 5

    # A day without sales may be closed explicitly (a zero Z); the chain goes on.
    clock.set("2026-11-22T21:00:00+01:00")
    z3 = await close(client, headers, outlet["id"])
    assert z3["counts"]["invoices"] == 0 and z3["totals"]["total"] == "0.00" and z3["first_counter"] is None
    assert z3["seal"]["payload"]["prev_hash"] == z2["seal"]["hash"]
    assert z3["grand_totals"]["totals"] == z2["grand_totals"]["totals"]

    listed = (await client.get("/v1/z-reports", params={"outlet_id": outlet["id"], "limit": 2}, headers=headers)).json()
    assert [z["id"] for z in listed["data"]] == [z3["id"], z2["id"]] and listed["has_more"]
    page2 = (await client.get("/v1/z-reports", params={"starting_after": z2["id"]}, headers=headers)).json()
    assert [z["id"] for z in page2["data"]] == [z1["id"]]
    window = {"business_day_gte": "2026-11-21", "business_day_lt": "2026-11-22"}
    ranged = (await client.get("/v1/z-reports", params=window, headers=headers)).json()
    assert [z["id"] for z in ranged["data"]] == [z2["id"]]


async def test_closing_rules(client, shop, clock):
    _, headers, outlet = shop
    clock.set("2026-11-20T10:00:00+01:00")
    await seal(client, headers, outlet["id"])
    clock.set("2026-11-21T00:05:00+01:00")  # past midnight, inside the grace period: the 20th is still open
    await seal(client, headers, outlet["id"])

    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "earlier_day_open"
    assert r.json()["open_business_day"] == "2026-11-20"
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": "2026-11-22"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "business_day_in_future"
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"surprise": 1}, headers=headers)
    assert r.status_code == 422

    z20 = await close(client, headers, outlet["id"], "2026-11-20")
    assert z20["counts"]["invoices"] == 1
    z21 = await close(client, headers, outlet["id"])
    assert z21["business_day"] == "2026-11-21" and z21["counts"]["invoices"] == 1
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": "2026-11-19"}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "business_day_passed"
    r = await client.get(f"/v1/outlets/{outlet['id']}/x-report", params={"business_day": "2026-11-20"}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "business_day_closed"
    assert r.json()["z_report_id"] == z20["id"]
    r = await client.get(f"/v1/outlets/{outlet['id']}/x-report", params={"business_day": "2026-11-25"}, headers=headers)
    assert r.status_code == 422


async def test_restricted_keys_report_on_their_own_outlet_only(client, shop):
    _, headers, outlet = shop
    other = (await client.post("/v1/outlets", json={"code": "KIN2", "name": "Limete"}, headers=headers)).json()
    till = (await client.post("/v1/api-keys", json={"name": "till", "outlet_id": outlet["id"]}, headers=headers)).json()
    till_h = {"Authorization": f"Bearer {till['api_key']}"}
    await seal(client, headers, outlet["id"])
    await seal(client, headers, other["id"])
    r = await client.post(f"/v1/outlets/{other['id']}/z-reports", headers=till_h)
    assert r.status_code == 403 and r.json()["code"] == "api_key_outlet_restricted"
    theirs = await close(client, headers, other["id"])
    mine = await close(client, till_h, outlet["id"])
    assert (await client.get(f"/v1/z-reports/{theirs['id']}", headers=till_h)).status_code == 404
    listed = (await client.get("/v1/z-reports", headers=till_h)).json()["data"]
    assert [z["id"] for z in listed] == [mine["id"]]
    assert (await client.get(f"/v1/outlets/{other['id']}/x-report", headers=till_h)).status_code == 403


async def test_timezone_edges_one_second_around_local_midnight(client, new_tenant, clock):
    _, headers = await new_tenant("Lubumbashi SARL", "L1234567Z")
    clock.set("2026-11-20T08:00:00+02:00")  # the outlet opens that morning
    outlet = (await client.post("/v1/outlets", json={"code": "LUB", "name": "Lubumbashi",
                                                     "timezone": "Africa/Lubumbashi"}, headers=headers)).json()
    clock.set("2026-11-20T23:59:59+02:00")
    before = await seal(client, headers, outlet["id"])
    clock.set("2026-11-21T00:00:00+02:00")
    after = await seal(client, headers, outlet["id"])
    assert before["issued_at"] == "2026-11-20T21:59:59.000Z" and after["issued_at"] == "2026-11-20T22:00:00.000Z"
    z20 = await close(client, headers, outlet["id"], "2026-11-20")
    assert (z20["first_counter"], z20["last_counter"]) == (1, 1)
    z21 = await close(client, headers, outlet["id"], "2026-11-21")
    assert (z21["first_counter"], z21["last_counter"]) == (2, 2)


async def test_a_dst_day_in_new_york_and_its_scheduled_close(client, new_tenant, clock, db, settings):
    _, headers = await new_tenant("NY Branch", "N1234567Z")
    clock.set("2026-03-07T12:00:00-05:00")
    outlet = (await client.post("/v1/outlets", json={"code": "NY", "name": "New York",
                                                     "timezone": "America/New_York"}, headers=headers)).json()
    # 2026-03-08 has 23 hours in New York (02:00 EST -> 03:00 EDT).
    clock.set("2026-03-08T00:00:01-05:00")
    await seal(client, headers, outlet["id"])
    clock.set("2026-03-08T23:59:59-04:00")
    await seal(client, headers, outlet["id"])
    clock.set("2026-03-09T00:00:00-04:00")
    await seal(client, headers, outlet["id"])
    grace = timedelta(minutes=settings.z_grace_minutes)
    midnight = datetime.fromisoformat("2026-03-09T00:00:00-04:00")
    mine = lambda rows: [d for _, o, d in rows if o == outlet["id"]]  # noqa: E731
    assert mine(await due_days(db, settings, midnight + grace - timedelta(seconds=1))) == []
    assert mine(await due_days(db, settings, midnight + grace)) == [date(2026, 3, 8)]
    clock.set(midnight + grace)
    await close_due_days(db, settings, midnight + grace)
    z = (await client.get("/v1/z-reports", params={"outlet_id": outlet["id"]}, headers=headers)).json()["data"]
    assert [(x["business_day"], x["counts"]["invoices"], x["closed_by"]) for x in z] == [("2026-03-08", 2, "scheduler")]


async def test_twenty_closers_and_the_scheduler_make_one_z(client, shop, db, settings):
    tenant, headers, outlet = shop
    for _ in range(3):
        await seal(client, headers, outlet["id"])
    later = datetime.fromisoformat("2026-11-22T12:00:00+01:00")  # the shop's day (the 20th) is due by then

    async def scheduler():
        await asyncio.sleep(0.01)
        return await close_due_days(db, settings, later)

    answers = await asyncio.gather(
        *[client.post(f"/v1/outlets/{outlet['id']}/z-reports", headers=headers) for _ in range(20)], scheduler())
    statuses = [a.status_code for a in answers[:20]]
    assert set(statuses) <= {200, 201}, [a.text for a in answers[:20] if a.status_code not in (200, 201)]
    ids = {a.json()["id"] for a in answers[:20]}
    assert len(ids) == 1
    async with db.transaction(readonly=True) as s:
        await bind_tenant(s, tenant["id"])
        rows = (await s.execute(select(ZReport))).scalars().all()
        events = (await s.execute(select(OutboxEvent).where(OutboxEvent.topic == "report.z_closed"))).scalars().all()
    assert len(rows) == 1 and rows[0].invoice_count == 3 and len(events) == 1
    # Exactly one creator: one API call answered 201, or none did and the scheduler made it. (The
    # scheduler's own count may include other tenants' due days in this shared database.)
    assert statuses.count(201) == (0 if rows[0].closed_by == "scheduler" else 1)


async def test_scheduler_closes_only_what_is_due_oldest_first(client, shop, clock, db, settings):
    _, headers, outlet = shop
    for day in ("2026-11-18", "2026-11-19"):
        clock.set(f"{day}T12:00:00+01:00")
        await seal(client, headers, outlet["id"])
    clock.set("2026-11-20T00:05:00+01:00")
    assert await close_due_days(db, settings, clock.now) >= 1  # the 18th (the 19th is inside its grace)
    days = [z["business_day"] for z in (await client.get("/v1/z-reports", params={"outlet_id": outlet["id"]},
                                                         headers=headers)).json()["data"]]
    assert days == ["2026-11-18"]
    clock.set("2026-11-20T00:10:00+01:00")
    await close_due_days(db, settings, clock.now)
    zs = (await client.get("/v1/z-reports", params={"outlet_id": outlet["id"]}, headers=headers)).json()["data"]
    assert [(z["business_day"], z["z_counter"]) for z in zs] == [("2026-11-19", 2), ("2026-11-18", 1)]


async def test_z_reports_are_append_only(client, shop, db):
    tenant, headers, outlet = shop
    await seal(client, headers, outlet["id"])
    z = await close(client, headers, outlet["id"])
    for statement in ("UPDATE z_reports SET total_cents = 1 WHERE id = :i", "DELETE FROM z_reports WHERE id = :i"):
        with pytest.raises(Exception, match="append-only|permission denied"):
            async with db.transaction() as s:
                await bind_tenant(s, tenant["id"])
                await s.execute(text(statement), {"i": z["id"]})
    assert (await client.get(f"/v1/z-reports/{z['id']}", headers=headers)).json() == z


async def test_cached_figures_can_be_checked_and_rebuilt_from_invoices(client, shop, db, clock):
    tenant, headers, outlet = shop
    clock.set("2026-11-20T10:00:00+01:00")
    first = [await seal(client, headers, outlet["id"]) for _ in range(2)]
    await close(client, headers, outlet["id"])
    clock.set("2026-11-21T10:00:00+01:00")
    await seal(client, headers, outlet["id"], original=first[0]["fiscal_number"], **CREDIT)
    x_before = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()

    async def rebuild(apply: bool):
        async with db.transaction() as s:
            await bind_tenant(s, tenant["id"])
            return await service.rebuild_figures(s, outlet["id"], apply=apply)

    clean = await rebuild(False)
    assert (clean.invoices, clean.days, clean.repaired, clean.z_mismatches) == (3, 2, [], [])
    # The cache is an ordinary table: wreck it (the service role may) and rebuild it.
    async with db.transaction() as s:
        await bind_tenant(s, tenant["id"])
        rows = (await s.execute(select(DayFigures).where(DayFigures.outlet_id == outlet["id"]))).scalars().all()
        for row in rows:
            if row.z_report_id is None:
                await s.delete(row)
            else:
                row.figures = json.dumps(Figures().to_store())
    assert (await rebuild(False)).repaired == ["2026-11-20", "2026-11-21"]
    assert (await rebuild(True)).repaired == ["2026-11-20", "2026-11-21"]
    assert (await rebuild(False)).repaired == []
    x_after = (await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)).json()
    for key in ("counts", "totals", "sales", "credit_notes", "grand_totals"):
        assert x_after[key] == x_before[key], key


async def test_public_verification_page_needs_the_hash(client, shop):
    _, headers, outlet = shop
    await seal(client, headers, outlet["id"])
    z = await close(client, headers, outlet["id"])
    path = z["qr"].split("://", 1)[1].split("/", 1)[1]
    assert path == f"verify/z/{z['id']}?h={z['seal']['hash']}&t={z['tenant_id']}"
    page = await client.get(f"/{path}")
    assert page.status_code == 200 and "Rapport Z authentique" in page.text and z["number"] in page.text
    data = (await client.get(f"/{path}", headers={"Accept": "application/json"})).json()
    assert data["authentic"] is True and data["total"] == z["totals"]["total"]
    assert data["checkpoint"] == z["checkpoint"]
    # In the visitor's language, times in the outlet's zone (Kinshasa), the UTC instant on hover.
    es = await client.get(f"/{path}", headers={"Accept-Language": "es-AR"})
    assert '<html lang="es">' in es.text and "Informe Z auténtico" in es.text and "Facturación" in es.text
    assert 'title="20 nov 2026, 11:00:00 UTC"' in es.text and ">20 nov 2026, 12:00</time>" in es.text, es.text
    en = await client.get(f"/{path}&lang=en", headers={"Accept-Language": "fr"})
    assert "Authentic Z report" in en.text and "Friday, November 20, 2026" in en.text
    # A missing or wrong seal hash, an unknown id: the "not known" page (404), JSON only when asked for.
    for params, id_ in (({}, z["id"]), ({"h": "0" * 64}, z["id"]), ({"h": "zz"}, z["id"]),
                        ({"h": z["seal"]["hash"]}, "zrp_nope"), ({"h": z["seal"]["hash"], "t": "ten_x"}, z["id"])):
        r = await client.get(f"/verify/z/{id_}", params=params, headers={"Accept-Language": "fr"})
        assert r.status_code == 404 and "Ce rapport Z est inconnu de Stalela" in r.text, (params, id_, r.text)
    assert (await client.get(f"/verify/z/{z['id']}", headers={"Accept": "application/json"})).status_code == 422
    wrong = await client.get(f"/verify/z/{z['id']}", params={"h": "0" * 64}, headers={"Accept": "application/json"})
    assert wrong.status_code == 404 and wrong.json()["code"] == "z_report_not_found"


async def test_a_timezone_change_eastwards_never_makes_a_day_with_sales_unclosable(client, new_tenant, clock, db,
                                                                                   settings):
    _, headers = await new_tenant("Pago Pago Trading", "P1234567Z")
    clock.set("2026-11-20T12:00:00-11:00")  # 23:00 UTC: the 20th in Pago Pago, the 21st in Kiritimati
    outlet = (await client.post("/v1/outlets", json={"code": "PPG", "name": "Pago Pago",
                                                     "timezone": "Pacific/Pago_Pago"}, headers=headers)).json()
    await seal(client, headers, outlet["id"])  # business day 2026-11-20
    r = await client.patch(f"/v1/outlets/{outlet['id']}", json={"timezone": "Pacific/Kiritimati"}, headers=headers)
    assert r.status_code == 200, r.text

    r = await client.get(f"/v1/outlets/{outlet['id']}/x-report", params={"business_day": "2026-11-20"},
                         headers=headers)
    assert r.status_code == 200 and r.json()["counts"]["invoices"] == 1, r.text
    # The 20th ended long ago in Kiritimati: the scheduler closes it (it used to log z_close_refused for ever).
    await close_due_days(db, settings, clock.now + timedelta(minutes=settings.z_grace_minutes))
    zs = (await client.get("/v1/z-reports", params={"outlet_id": outlet["id"]}, headers=headers)).json()["data"]
    assert [(z["business_day"], z["counts"]["invoices"], z["closed_by"]) for z in zs] == [("2026-11-20", 1, "scheduler")]
    z21 = await close(client, headers, outlet["id"])  # and the days after it close as usual
    assert (z21["business_day"], z21["z_counter"]) == ("2026-11-21", 2)
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": "2026-11-19"},
                          headers=headers)
    assert r.status_code == 422 and r.json()["first_business_day"] == "2026-11-20", r.text  # it never rises


async def test_a_timezone_change_westwards_lowers_the_first_business_day(client, new_tenant, clock):
    _, headers = await new_tenant("Kiritimati Trading", "K1234567Z")
    clock.set("2026-11-21T01:00:00+14:00")  # 11:00 UTC on the 20th: still the 20th in Pago Pago
    outlet = (await client.post("/v1/outlets", json={"code": "KIR", "name": "Kiritimati",
                                                     "timezone": "Pacific/Kiritimati"}, headers=headers)).json()
    assert outlet["first_business_day"] == "2026-11-21"
    r = await client.patch(f"/v1/outlets/{outlet['id']}", json={"timezone": "Pacific/Pago_Pago"}, headers=headers)
    assert r.status_code == 200 and r.json()["first_business_day"] == "2026-11-20", r.text
    r = await client.get(f"/v1/outlets/{outlet['id']}/x-report", headers=headers)  # today, the 20th there
    assert r.status_code == 200 and r.json()["business_day"] == "2026-11-20", r.text
    await seal(client, headers, outlet["id"])
    z = await close(client, headers, outlet["id"])
    assert (z["business_day"], z["counts"]["invoices"]) == ("2026-11-20", 1)
    r = await client.post(f"/v1/outlets/{outlet['id']}/z-reports", json={"business_day": "2026-11-19"},
                          headers=headers)
    assert r.status_code == 422 and r.json()["first_business_day"] == "2026-11-20", r.text
