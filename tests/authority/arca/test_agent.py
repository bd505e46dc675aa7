"""Argentina end to end: an AR tenant seals receipts and the ARCA agent gets their CAEs from the ARCA
simulator (a real SOAP server on loopback), on SQLite and PostgreSQL, with the simulator's faults."""
from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import uuid

import httpx
import pytest

from stalela.app import create_app
from stalela.authority.arca import service as arca_service
from stalela.authority.simulator.arca import ArcaFaultSpec, ArcaSimulatorServer
from sqlalchemy import func, select

from stalela.fiscal.reports.audit import verify_database
from stalela.outbox.dispatcher import Dispatcher
from stalela.outbox.models import OutboxEvent
from stalela.tenancy.context import bind_platform
from tests.authority.arca.conftest import make_certificate, pem
from tests.conftest import OPERATOR_TOKEN, make_settings

CUIT = "30712345671"  # check digit valid; the certificate carries serialNumber=CUIT 30712345671
BUYER_RI = {"doc_type": "CUIT", "doc_number": "20267565393", "name": "Juan Pérez", "vat_condition":
            "responsable_inscripto"}


@pytest.fixture(scope="module")
def arca_sim():
    with ArcaSimulatorServer(faults=ArcaFaultSpec(seed=7)) as server:
        yield server


@pytest.fixture
def identity():
    # A certificate per test: WSAA refuses a second ticket for a certificate whose ticket is still valid
    # (coe.alreadyAuthenticated), and each test starts with an empty ticket cache.
    cert, key = make_certificate(CUIT)
    return pem(cert), pem(key)


@pytest.fixture
async def world(fresh_database_url, tmp_path, arca_sim, identity):
    arca_sim.set_faults(ArcaFaultSpec(seed=7))
    settings = make_settings(fresh_database_url, tmp_path, outbox_backoff_base_seconds=0.01,
                             outbox_backoff_cap_seconds=0.05, outbox_poll_seconds=0.05, authority_timeout_seconds=1.0,
                             webhooks_allow_private=True)  # the simulator listens on loopback
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post("/v1/tenants", json={"name": "Kiosco SRL", "tax_id": "30-71234567-1",
                                                       "jurisdiction": "AR",
                                                       "ar": {"vat_condition": "responsable_inscripto"}},
                                  headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            assert r.status_code == 201, r.text
            assert r.json()["tenant"]["tax_id"] == CUIT and r.json()["tenant"]["ar"]["vat_condition"] \
                == "responsable_inscripto"
            headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
            # A fresh point of sale per test: the simulator is shared by the module.
            pos = int(uuid.uuid4().int % 90000) + 1
            outlet = (await client.post("/v1/outlets", json={"code": f"PV{pos}", "name": "Caja 1", "pos_number": pos},
                                        headers=headers)).json()
            assert outlet["pos_number"] == pos and outlet["timezone"] == "America/Argentina/Buenos_Aires", outlet
            yield {"app": app, "client": client, "headers": headers, "outlet": outlet, "sim": arca_sim, "pos": pos,
                   "identity": identity, "dispatcher": Dispatcher(app.state.db, settings)}


async def pending_events(world) -> int:
    async with world["app"].state.db.transaction(readonly=True) as session:
        await bind_platform(session)
        return (await session.execute(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.status == "pending", OutboxEvent.topic.not_like("webhook%")))).scalar_one()


async def drain(world, seconds=10.0):
    """Run the outbox until no event of ours is left pending (retries wait for their time)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await world["dispatcher"].run_once() == 0:
            if await pending_events(world) == 0:
                return
            await asyncio.sleep(0.05)
    async with world["app"].state.db.transaction(readonly=True) as session:
        await bind_platform(session)
        left = (await session.execute(select(OutboxEvent.topic, OutboxEvent.attempts, OutboxEvent.last_error,
                                             OutboxEvent.available_at).where(OutboxEvent.status == "pending"))).all()
    raise AssertionError(f"the outbox did not drain: {left}")


async def connect(world):
    cert, key = world["identity"]
    r = await world["client"].put("/v1/authority/arca/credentials", headers=world["headers"], json={
        "certificate": cert, "private_key": key, "environment": "custom",
        "wsaa_url": world["sim"].wsaa_url, "wsfe_url": world["sim"].wsfe_url})
    assert r.status_code == 200, r.text


def receipt(world, type_="6", **over):
    body = {"outlet_id": world["outlet"]["id"], "type": type_,
            "lines": [{"description": "Yerba mate 1 kg", "quantity": "2", "unit_price": "3025.00", "vat_rate": "21"},
                      {"description": "Pan", "quantity": "1", "unit_price": "1000", "vat_rate": "10.5"}]}
    body.update(over)
    return body


async def seal(world, body):
    r = await world["client"].post("/v1/invoices", json=body, headers=world["headers"])
    assert r.status_code == 201, r.text
    return r.json()


async def sync_of(world, invoice):
    r = await world["client"].get(f"/v1/invoices/{invoice['id']}", headers=world["headers"])
    return r.json()["sync"]


async def test_receipts_get_one_cae_each_in_number_order(world):
    await connect(world)
    await drain(world)
    sealed = [await seal(world, receipt(world)) for _ in range(3)]
    sealed.append(await seal(world, receipt(world, "1", buyer=BUYER_RI)))
    pos = world["pos"]
    assert [s["fiscal_number"] for s in sealed] == [
        f"B {pos:05d}-00000001", f"B {pos:05d}-00000002", f"B {pos:05d}-00000003", f"A {pos:05d}-00000001"]
    assert sealed[0]["ar"]["imp_total"] == sealed[0]["totals"]["total"] and sealed[0]["ar"]["point_of_sale"] == pos
    assert sealed[0]["seal"]["payload"]["ar"] == sealed[0]["ar"]  # what ARCA is sent is what was signed
    await drain(world)
    caes_b = world["sim"].caes(CUIT, pos, 6)
    assert sorted(caes_b) == [1, 2, 3] and world["sim"].caes(CUIT, pos, 1).keys() == {1}
    # Seal v2: a person's CUIT is not signed in clear, yet ARCA is sent it (read from the buyer's subject key).
    assert sealed[3]["seal"]["payload"]["ar"]["doc_number"] is None and sealed[3]["buyer"]["doc_number"] == "20267565393"
    sent = world["sim"].sim.state.get_series(CUIT, pos, 1).receipts[1].fields
    assert sent["DocNro"] == "20267565393" and sent["DocTipo"] == "80"
    for s in sealed:
        sync = await sync_of(world, s)
        assert sync["status"] == "acknowledged" and sync["result"] == "A", sync
        assert len(sync["authority_code"]) == 14 and sync["cae_due"]
        qr = json.loads(base64.b64decode(sync["arca_qr_url"].split("?p=", 1)[1]))
        assert qr["codAut"] == int(sync["authority_code"]) and qr["cuit"] == int(CUIT) and qr["ptoVta"] == pos
        assert qr["nroCmp"] == s["ar"]["number"] and qr["tipoCmp"] == s["ar"]["cbte_tipo"]
    assert caes_b[2] == (await sync_of(world, sealed[1]))["authority_code"]
    page = (await world["client"].get(f"/verify/{sealed[0]['id']}", headers={"Accept": "application/json"})).json()
    assert page["authentic"] and page["ar"]["cae"] == caes_b[1]
    html = (await world["client"].get(f"/verify/{sealed[0]['id']}", headers={"Accept": "text/html"})).text
    assert 'data-testid="arca-qr"' in html and "Comprobante auténtico" in html and caes_b[1] in html
    pdf = await world["client"].get(f"/v1/invoices/{sealed[0]['id']}/pdf", headers=world["headers"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"] == f'attachment; filename="B_{pos:05d}-00000001.pdf"'
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.content, check=True,
                              capture_output=True).stdout.decode()
        for expected in ("Factura B", f"{pos:05d} - 00000001", caes_b[1], "CAE", "IVA contenido", "1.145,02",
                         "Yerba mate 1 kg", "7.050,00"):
            assert expected in text, expected


async def test_without_credentials_receipts_wait_then_go_aligned(world):
    world["sim"].set_last(CUIT, world["pos"], 11, 0)
    # ARCA already holds 41 receipts of type 6 at this point of sale (issued before Stalela).
    world["sim"].set_last(CUIT, world["pos"], 8, 0)
    world["sim"].set_last(CUIT, world["pos"], 7, 0)
    world["sim"].set_last(CUIT, world["pos"], 1, 41)
    first = await seal(world, receipt(world))  # type 6: not aligned (no credentials yet), starts at 1
    await drain(world)
    sync = await sync_of(world, first)
    assert sync["status"] == "pending" and sync["error"]["code"] == "arca_not_configured", sync
    await connect(world)
    await drain(world)
    assert (await sync_of(world, first))["status"] == "acknowledged"
    # Type 1 had numbered nothing: aligned with ARCA's 41 before its first seal.
    a = await seal(world, receipt(world, "1", buyer=BUYER_RI))
    assert a["counter"] == 42 and a["seal"]["payload"]["series_first"] == 42
    await drain(world)
    assert (await sync_of(world, a))["status"] == "acknowledged"
    assert world["sim"].last(CUIT, world["pos"], 1) == 42


async def test_a_lost_answer_is_recovered_without_a_second_cae(world):
    await connect(world)
    await drain(world)
    world["sim"].force_next("drop_after_commit")
    inv = await seal(world, receipt(world))
    await drain(world)
    sync = await sync_of(world, inv)
    assert sync["status"] == "acknowledged", sync
    caes = world["sim"].caes(CUIT, world["pos"], 6)
    assert list(caes) == [1] and sync["authority_code"] == caes[1]
    counts = world["sim"].state()["counts"]
    assert counts["fault.drop_after_commit"] >= 1 and counts["wsfe.FECompConsultar"] >= 1  # recovered, not resent


async def test_http_500_and_latency_cost_time_not_receipts(world):
    await connect(world)
    await drain(world)
    world["sim"].set_faults(ArcaFaultSpec(seed=3, http500=0.3, latency_ms=20))
    sealed = [await seal(world, receipt(world)) for _ in range(5)]
    await drain(world, seconds=60)
    world["sim"].set_faults(ArcaFaultSpec(seed=7))
    await drain(world)
    assert sorted(world["sim"].caes(CUIT, world["pos"], 6)) == [1, 2, 3, 4, 5]
    assert [(await sync_of(world, s))["status"] for s in sealed] == ["acknowledged"] * 5


async def test_a_number_taken_elsewhere_is_rejected_and_holds_the_series(world):
    await connect(world)
    await drain(world)
    first = await seal(world, receipt(world))
    await drain(world)
    world["sim"].set_last(CUIT, world["pos"], 6, 5)  # another system issued 2..5 meanwhile
    second, third = await seal(world, receipt(world)), await seal(world, receipt(world))
    await drain(world)
    assert (await sync_of(world, first))["status"] == "acknowledged"
    sync = await sync_of(world, second)
    assert sync["status"] == "rejected" and sync["error"]["code"] == "arca_number_taken" and sync["result"] == "R"
    held = await sync_of(world, third)
    assert held["status"] == "pending" and held["error"]["code"] == "series_blocked", held


async def test_realignment_continues_a_held_series_from_arcas_last_number(world):
    await connect(world)
    await drain(world)
    pos = world["pos"]
    first = await seal(world, receipt(world))
    await drain(world)
    world["sim"].set_last(CUIT, pos, 6, 5)  # another system issued 2..5
    second, third = await seal(world, receipt(world)), await seal(world, receipt(world))
    await drain(world)
    r = await world["client"].post("/v1/authority/arca/realign", headers=world["headers"],
                                   json={"outlet_id": world["outlet"]["id"], "type": "6"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["arca_last"] == 5 and out["previous"]["last_number"] == 3 and out["series"]["next_number"] == 6
    assert out["series"]["generation"] == 2 and out["rejected"] == [third["id"]]
    held = await sync_of(world, third)
    assert held["status"] == "rejected" and held["error"]["code"] == "series_realigned"
    fourth = await seal(world, receipt(world))
    assert fourth["fiscal_number"] == f"B {pos:05d}-00000006/2" and fourth["ar"]["number"] == 6
    assert fourth["seal"]["payload"]["series_first"] == 6
    await drain(world)
    assert (await sync_of(world, fourth))["status"] == "acknowledged"
    assert world["sim"].last(CUIT, pos, 6) == 6 and (await sync_of(world, first))["status"] == "acknowledged"
    again = await world["client"].post("/v1/authority/arca/realign", headers=world["headers"],
                                       json={"outlet_id": world["outlet"]["id"], "type": "6"})
    assert again.status_code == 409 and again.json()["code"] == "series_in_step"
    bad = await world["client"].post("/v1/authority/arca/realign", headers=world["headers"],
                                     json={"outlet_id": world["outlet"]["id"], "type": "FV"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_invoice_type"
    # The ledger still verifies: every generation is a gap-free chain from its declared first number.
    report = await verify_database(world["app"].state.db, first["tenant_id"])
    assert report.valid, [f.describe() for f in report.failures]
    assert (report.invoices, report.series) == (4, 2)
    assert second["fiscal_number"] == f"B {pos:05d}-00000002"


async def test_wsaa_refusing_a_second_ticket_leaves_receipts_waiting_visibly(world):
    # WSAA says a ticket is already valid for this certificate, and no process of ours holds it.
    world["sim"].set_faults(ArcaFaultSpec(seed=7, already_authenticated=1.0))
    await connect(world)
    inv = await seal(world, receipt(world))
    await world["dispatcher"].run_once()
    await world["dispatcher"].run_once()
    sync = await sync_of(world, inv)
    assert sync["status"] == "pending" and sync["error"]["code"] == "arca_ticket_unavailable", sync
    assert world["sim"].caes(CUIT, world["pos"], 6) == {}


async def test_an_ar_outlet_takes_no_dgi_device(world):
    r = await world["client"].put(f"/v1/outlets/{world['outlet']['id']}/authority-device", headers=world["headers"],
                                  json={"nim": "NIM1", "base_url": "https://dgi.example/emcf", "token": "t"})
    assert r.status_code == 409 and r.json()["code"] == "jurisdiction_mismatch", r.text


async def test_a_backlog_goes_many_receipts_per_request(world):
    waiting = [await seal(world, receipt(world)) for _ in range(20)]  # no credentials yet: they wait
    await drain(world)
    calls = world["sim"].state()["counts"].get("wsfe.FECAESolicitar", 0)
    await connect(world)
    await drain(world)
    caes = world["sim"].caes(CUIT, world["pos"], 6)
    assert sorted(caes) == list(range(1, 21)) and len(set(caes.values())) == 20
    assert [(await sync_of(world, w))["authority_code"] for w in waiting] == [caes[n] for n in range(1, 21)]
    # One request for the run (the resync queues all twenty; the first claims the other nineteen).
    assert world["sim"].state()["counts"]["wsfe.FECAESolicitar"] - calls <= 2


async def test_a_refused_credit_note_does_not_use_up_its_original(world):
    await connect(world)
    await drain(world)
    sale = await seal(world, receipt(world))
    await drain(world)
    world["sim"].set_last(CUIT, world["pos"], 8, 5)  # another system issued NC B 1..5 at this point of sale
    note = receipt(world, "8", original=sale["id"], lines=[
        {"description": "Devolución", "quantity": "1", "unit_price": sale["totals"]["total"], "vat_rate": "21"}])
    refused = await seal(world, note)
    await drain(world)
    assert (await sync_of(world, refused))["error"]["code"] == "arca_number_taken"
    r = await world["client"].post("/v1/authority/arca/realign", headers=world["headers"],
                                   json={"outlet_id": world["outlet"]["id"], "type": "8"})
    assert r.status_code == 200, r.text
    again = await seal(world, note)  # the refused note never took effect: the sale can still be credited
    assert again["fiscal_number"] == f"NC B {world['pos']:05d}-00000006/2"
    await drain(world)
    assert (await sync_of(world, again))["status"] == "acknowledged"
    over = await world["client"].post("/v1/invoices", json=note, headers=world["headers"])
    assert over.status_code == 422 and over.json()["code"] == "credit_note_exceeds_original"


async def test_a_backlog_is_not_realigned_and_a_due_date_before_the_receipt_is_refused(world):
    await seal(world, receipt(world))  # waiting for credentials: not held by a refusal
    await connect(world)
    r = await world["client"].post("/v1/authority/arca/realign", headers=world["headers"],
                                   json={"outlet_id": world["outlet"]["id"], "type": "6"})
    assert r.status_code == 409 and r.json()["code"] == "series_not_held", r.text
    past = await world["client"].post("/v1/invoices", headers=world["headers"], json=receipt(
        world, concept="services", service_from="2026-01-01", service_to="2026-01-31", payment_due="2026-02-01"))
    assert past.status_code == 422 and past.json()["code"] == "payment_due_before_receipt_date"
    assert past.json()["field"] == "payment_due"


async def test_in_a_run_each_receipt_answers_for_itself(world):
    """The client's contract the agent relies on (against the simulator): in a run where receipt 2 is
    refused, 1 is approved, 2 carries its own reason, 3 is refused for its number (10016)."""
    await connect(world)
    await drain(world)
    sale = await seal(world, receipt(world))
    await drain(world)
    endpoint = await arca_service.wsfe_endpoint(world["app"].state.db, world["app"].state.settings,
                                                sale["tenant_id"])
    base = dict(sale["ar"])
    run = [dict(base, number=2), dict(base, number=3, imp_total="9999.00"), dict(base, number=4)]
    results = await endpoint.client.fe_cae_solicitar_many(endpoint.auth, run)
    by_number = {r.number: r for r in results}
    assert by_number[2].result == "A" and by_number[2].cae
    assert by_number[3].result == "R" and by_number[3].observations
    assert by_number[4].result == "R" and any(code == 10016 for code, _ in by_number[4].errors + by_number[4].observations)
    assert sorted(world["sim"].caes(CUIT, world["pos"], 6)) == [1, 2]


async def test_a_run_whose_request_failed_goes_again_as_a_run(world):
    await connect(world)
    await drain(world)  # aligned, ticket fetched
    waiting = [await seal(world, receipt(world)) for _ in range(20)]  # their events wait for the drain below
    before = dict(world["sim"].state()["counts"])
    world["sim"].force_next("http500")  # the run's FECAESolicitar fails: nothing registered
    await drain(world)
    assert sorted(world["sim"].caes(CUIT, world["pos"], 6)) == list(range(1, 21))
    assert [(await sync_of(world, w))["status"] for w in waiting] == ["acknowledged"] * 20
    counts = world["sim"].state()["counts"]
    # Asked once whether the run's first is registered (602), then sent again as one run, not one by one.
    assert counts["wsfe.FECAESolicitar"] - before.get("wsfe.FECAESolicitar", 0) <= 3
    assert 1 <= counts.get("wsfe.FECompConsultar", 0) - before.get("wsfe.FECompConsultar", 0) <= 2
