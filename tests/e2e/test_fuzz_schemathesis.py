"""The API against its own OpenAPI document: a bounded schemathesis campaign with every check, on a live
server on PostgreSQL, as a tenant (API key), as a tenant without data (reads only) and as the operator
(operator token). Any 5xx or any answer the document does not describe fails the test (issue 24: the next
defect of this kind is caught here).

Budget (``STALELA_FUZZ_EXAMPLES`` examples per operation and phase, ``STALELA_FUZZ_SECONDS`` per run):
the defaults keep the three runs at about 3¼ minutes on a two-core machine. ``-m fuzz`` selects it.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stalela.migrations import upgrade
from tests.conftest import OPERATOR_TOKEN
from tests.support.databases import create_database, drop_database
from tests.support.invoices import sample_invoice
from tests.support.server import start_server

pytestmark = [pytest.mark.fuzz, pytest.mark.e2e, pytest.mark.postgres]

EXAMPLES = os.environ.get("STALELA_FUZZ_EXAMPLES", "20")
SECONDS = os.environ.get("STALELA_FUZZ_SECONDS", "80")
SEED = os.environ.get("STALELA_FUZZ_SEED", "24")
# The run as a tenant without data: reads only, a smaller share of the budget.
EMPTY_EXAMPLES = os.environ.get("STALELA_FUZZ_EMPTY_EXAMPLES", "5")
EMPTY_SECONDS = os.environ.get("STALELA_FUZZ_EMPTY_SECONDS", "30")
# The operator's API; everything else is a tenant's (or public).
OPERATOR_PATHS = r"^/v1/(tenants|ops)(/|$)"


@pytest.fixture
def server(postgres_server, tmp_path):
    if not postgres_server.admin_url:
        pytest.skip(postgres_server.reason)
    url = create_database(postgres_server.admin_url)
    asyncio.run(upgrade(url))
    live = start_server({"STALELA_DATABASE_URL": url, "STALELA_OPERATOR_TOKEN": OPERATOR_TOKEN}, tmp_path / "var")
    try:
        yield live
    finally:
        live.stop()
        drop_database(postgres_server.admin_url, url)


def _tenant_key(base_url: str, name: str, *, with_sales: bool) -> str:
    """A tenant; with an outlet and a sealed invoice, so that reads find something, or with nothing at all
    (no outlet, no invoice, no checkpoint), so that reads meet the answers of an empty account."""
    with httpx.Client(base_url=base_url, timeout=30) as c:
        r = c.post("/v1/tenants", json={"name": name, "tax_id": "F1234567Z", "jurisdiction": "CD"},
                   headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert r.status_code == 201, r.text
        key = {"Authorization": f"Bearer {r.json()['api_key']}"}
        if with_sales:
            outlet = c.post("/v1/outlets", json={"code": "FZ1", "name": "Fuzz"}, headers=key).json()
            assert c.post("/v1/invoices", json=sample_invoice(outlet["id"]), headers=key).status_code == 201
        return r.json()["api_key"]


def _schemathesis(base_url: str, token: str, operations: list[str], report: Path, *, examples: str = EXAMPLES,
                  seconds: str = SECONDS) -> subprocess.CompletedProcess:
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    command = [st, "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
               "run", f"{base_url}/openapi.json", "--max-examples", examples, "--max-time", seconds, "--seed", SEED,
               "--workers", "1", "--no-color",
               "--header", f"Authorization: Bearer {token}", "--report", "junit", "--report-dir", str(report),
               "--request-timeout", "30", *operations]
    report.mkdir(parents=True, exist_ok=True)
    # In the report directory: schemathesis keeps a cache of failing cases (.schemathesis/) where it runs.
    run = subprocess.run(command, capture_output=True, text=True, timeout=int(seconds) * 3 + 120, cwd=report)
    (report / "output.txt").write_text(run.stdout + run.stderr)  # the whole story, for a failed run
    return run


def test_the_api_conforms_to_its_openapi_document(server, tmp_path):
    key = _tenant_key(server.base_url, "Fuzz SARL", with_sales=True)
    empty = _tenant_key(server.base_url, "Fuzz Empty SARL", with_sales=False)
    runs = {
        "tenant": _schemathesis(server.base_url, key, ["--exclude-path-regex", OPERATOR_PATHS], tmp_path / "tenant"),
        # Reads only: what an account without data answers (GET /v1/ledger/checkpoints/latest is a 404 there,
        # which the document once missed). The coverage phase asks every operation at least once.
        "empty tenant": _schemathesis(server.base_url, empty, ["--exclude-path-regex", OPERATOR_PATHS,
                                                               "--include-method", "GET",
                                                               "--phases", "coverage,fuzzing"],
                                      tmp_path / "empty", examples=EMPTY_EXAMPLES, seconds=EMPTY_SECONDS),
        "operator": _schemathesis(server.base_url, OPERATOR_TOKEN, ["--include-path-regex", OPERATOR_PATHS],
                                  tmp_path / "operator"),
    }
    failed = {who: run.stdout[-12000:] + run.stderr[-3000:] for who, run in runs.items() if run.returncode != 0}
    assert not failed, "\n\n".join(f"=== schemathesis as the {who} ===\n{out}" for who, out in failed.items())
