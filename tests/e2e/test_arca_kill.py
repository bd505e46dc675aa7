"""kill -9 of the ARCA worker between FECAESolicitar and storing its answer (issue 14, item 8).

A real `stalela serve` (API only) and a real `stalela worker` in a process group of its own, on SQLite and
PostgreSQL, against the ARCA simulator. The simulator is told to issue and store the next CAE and then hold
the connection without answering (``drop_after_commit``, ``drop_mode=hang``); the worker's authority timeout
is longer than the time the test needs to see the CAE at ARCA and SIGKILL the worker's whole process group.
So the worker dies with the CAE issued at ARCA, the sync row marked as sent, and nothing stored. More
receipts are sealed while no worker runs, then a fresh worker starts.

Afterwards: every receipt acknowledged, none rejected; at ARCA exactly one CAE per receipt, numbers 1..n
of each series with last == n; the CAE each invoice shows is ARCA's; and the recovery asked
``FECompConsultar`` instead of sending a number again (every receipt approved once, none refused: a
resend of the number ARCA already holds would be a 10016). The agent sends a series' waiting receipts
many per FECAESolicitar, so requests are not counted, receipts are.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from stalela.authority.simulator.arca import ArcaFaultSpec, ArcaSimulatorServer
from tests.authority.arca.conftest import make_certificate, pem
from tests.conftest import MASTER_KEY, OPERATOR_TOKEN
from tests.support.server import start_server

pytestmark = pytest.mark.e2e

CUIT = "30712345671"
BUYER_RI = {"doc_type": "CUIT", "doc_number": "20267565393", "name": "Juan Pérez",
            "vat_condition": "responsable_inscripto"}
# Longer than sealing, seeing the CAE at ARCA and the kill take; short, because the dead worker's claim on the
# receipt (6 x timeout + 5 s) is what the fresh worker waits out before it may ask ARCA.
AUTHORITY_TIMEOUT = 4
LEASE_SECONDS = 2  # the dead worker's outbox leases


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        # A session (and process group) of its own: the kill takes everything the worker runs.
        return subprocess.Popen([sys.executable, "-m", "stalela.cli.main", "worker", "--concurrency", "4"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _receipt(outlet_id: str, invoice_type: str, n: int) -> dict:
    body = {"outlet_id": outlet_id, "type": invoice_type,
            "lines": [{"description": f"Yerba mate 1 kg #{n}", "quantity": str(n), "unit_price": "3025.00",
                       "vat_rate": "21"},
                      {"description": "Pan", "quantity": "1", "unit_price": "1000", "vat_rate": "10.5"}]}
    if invoice_type == "1":
        body["buyer"] = BUYER_RI
    return body


def _sim_state(sim: ArcaSimulatorServer) -> dict:
    return httpx.get(f"{sim.url}/_sim/state", timeout=10).json()


def test_kill_9_between_fecaesolicitar_and_storing_its_answer(fresh_database_url, tmp_path):
    data_dir = tmp_path / "var"
    # hang: the CAE is stored, the connection held longer than the worker waits, then closed without an answer.
    sim = ArcaSimulatorServer(faults=ArcaFaultSpec(seed=11, drop_mode="hang", hang_seconds=3 * AUTHORITY_TIMEOUT))
    sim.start()
    server = start_server({"STALELA_DATABASE_URL": fresh_database_url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN,
                           "STALELA_INPROCESS_WORKERS": "false", "STALELA_BACKGROUND_WORKERS": "0", "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")} | {
        "STALELA_DATABASE_URL": fresh_database_url, "STALELA_MASTER_KEY": MASTER_KEY,
        "STALELA_DATA_DIR": str(data_dir), "STALELA_LOG_LEVEL": "WARNING",
        "STALELA_AUTHORITY_TIMEOUT_SECONDS": str(AUTHORITY_TIMEOUT),
        "STALELA_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS), "STALELA_OUTBOX_POLL_SECONDS": "0.1",
        "STALELA_OUTBOX_BACKOFF_BASE_SECONDS": "0.05", "STALELA_OUTBOX_BACKOFF_CAP_SECONDS": "0.5",
        "STALELA_OUTBOX_MAX_ATTEMPTS": "1000", "STALELA_CHECKPOINT_INTERVAL_SECONDS": "0",
        "STALELA_WEBHOOKS_ALLOW_PRIVATE": "true"}  # the simulator listens on loopback
    workers: list[subprocess.Popen] = []
    log = tmp_path / "worker.log"
    c = httpx.Client(base_url=server.base_url, timeout=30)
    try:
        r = c.post("/v1/tenants", json={"name": "Kiosco SRL", "tax_id": CUIT, "jurisdiction": "AR",
                                        "ar": {"vat_condition": "responsable_inscripto"}},
                   headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        pos = uuid.uuid4().int % 90000 + 1
        outlet = c.post("/v1/outlets", json={"code": "PV1", "name": "Caja 1", "pos_number": pos}, headers=key).json()
        cert, private_key = make_certificate(CUIT)
        r = c.put("/v1/authority/arca/credentials", headers=key, json={
            "certificate": pem(cert), "private_key": pem(private_key), "environment": "custom",
            "wsaa_url": sim.wsaa_url, "wsfe_url": sim.wsfe_url})
        assert r.status_code == 200, r.text

        def seal(invoice_type: str, n: int) -> dict:
            r = c.post("/v1/invoices", json=_receipt(outlet["id"], invoice_type, n), headers=key)
            assert r.status_code == 201, r.text
            return r.json()

        # Two series of the point of sale: B (6) and A (1).
        sealed = [seal("6", n) for n in range(1, 4)] + [seal("1", n) for n in range(1, 3)]
        sim.force_next("drop_after_commit")  # the next CAE issued is stored at ARCA, its answer never comes
        workers.append(_start_worker(env, log))
        deadline = time.monotonic() + 30
        while not _sim_state(sim)["counts"].get("fault.drop_after_commit"):
            assert time.monotonic() < deadline, f"no CAE issued: {_sim_state(sim)}\n{log.read_text()[-3000:]}"
            assert workers[0].poll() is None, log.read_text()[-3000:]
            time.sleep(0.02)
        # The CAE is at ARCA (counted after the commit) and the worker waits for an answer that never comes.
        os.killpg(workers[0].pid, signal.SIGKILL)
        assert workers[0].wait(10) == -signal.SIGKILL
        at_kill = _sim_state(sim)
        assert not at_kill["counts"].get("wsfe.FECompConsultar"), "the worker recovered by itself before the kill"
        at_arca = sum(len(s["receipts"]) for s in at_kill["series"].values())
        acknowledged = [i for i in sealed if c.get(f"/v1/invoices/{i['id']}", headers=key).json()["sync"]["status"]
                        == "acknowledged"]
        assert len(acknowledged) < at_arca, "no CAE was left between ARCA and Stalela by the kill"

        # Receipts sealed while no worker runs, then a fresh worker.
        sealed += [seal("6", 4), seal("1", 3)]
        workers.append(_start_worker(env, log))
        deadline = time.monotonic() + 6 * AUTHORITY_TIMEOUT + 5 + 30  # the dead worker's claim, then the work
        while True:
            syncs = {i["id"]: c.get(f"/v1/invoices/{i['id']}", headers=key).json()["sync"] for i in sealed}
            if all(s["status"] != "pending" for s in syncs.values()):
                break
            assert workers[1].poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"not all synced: {syncs}\n{log.read_text()[-3000:]}"
            time.sleep(0.25)

        state = _sim_state(sim)
        assert [s["status"] for s in syncs.values()] == ["acknowledged"] * len(sealed), syncs
        expected = {6: 4, 1: 3}
        for cbte_type, n in expected.items():
            series = state["series"][f"{CUIT}/{pos}/{cbte_type}"]
            numbers = [r["number"] for r in series["receipts"]]
            assert numbers == list(range(1, n + 1)) and series["last"] == n, series
            caes = [r["cae"] for r in series["receipts"]]
            assert len(set(caes)) == n and all(len(cae) == 14 for cae in caes)
        assert set(state["series"]) == {f"{CUIT}/{pos}/{t}" for t in expected}
        for invoice in sealed:
            ar = invoice["ar"]
            [at] = [r for r in state["series"][f"{CUIT}/{pos}/{ar['cbte_tipo']}"]["receipts"]
                    if r["number"] == ar["number"]]
            assert syncs[invoice["id"]]["authority_code"] == at["cae"], (invoice["fiscal_number"], at)
        counts = state["counts"]
        # Recovered by asking, not by sending again: every receipt approved once, none refused (no 10016).
        # (Without the FECompConsultar before a resend, the fresh worker sends the number again, ARCA answers 10016 and
        # the agent's explanation of the 10016 finds the CAE: the outcome is the same, the refusal count is what fails.)
        assert counts["wsfe.approved"] == len(sealed) and counts["wsfe.FECAESolicitar"] <= len(sealed), counts
        assert not counts.get("wsfe.rejected") and not counts.get("wsfe.rejected_request"), counts
        assert counts["wsfe.FECompConsultar"] >= 1 and counts["fault.drop_after_commit"] == 1, counts
    finally:
        c.close()
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
        server.stop()
        sim.stop()
