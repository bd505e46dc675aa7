"""The MCP server's surface (issue 19, items 1, 2): the tool list snapshot, the documentation tools against the
live OpenAPI document (generated code compiles), the stdio transport and ``stalela drafts approve``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from stalela.assistants import mcp_docs
from tests.assistants.test_drafts_api import agent_key, draft, invoices, policy, seal, shop  # noqa: F401
from tests.assistants.test_mcp import failure, mcp, structured
from tests.conftest import MASTER_KEY

SNAPSHOT = Path(__file__).parent / "mcp_tools.snapshot.json"


def surface(tools) -> list[dict]:
    return [{"name": t.name, "title": t.annotations.title, "description": t.description,
             "annotations": t.annotations.model_dump(mode="json", exclude_none=True, exclude={"title"}),
             "input_schema": t.input_schema, "output_schema": t.output_schema} for t in tools]


async def test_the_tool_list_matches_its_snapshot(app, new_tenant):
    """Any change to a tool's name, description, annotations or schemas is a change of the product's surface:
    regenerate with STALELA_UPDATE_SNAPSHOTS=1 and review the diff."""
    _, root = await new_tenant()
    async with mcp(app, root) as m:
        listed = surface((await m.list_tools()).tools)
    if os.environ.get("STALELA_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(listed, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert listed == json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert len(listed) <= 15  # curated: context bloat is the first complaint about MCP servers


async def test_search_returns_only_paths_the_app_serves(app, new_tenant):
    _, root = await new_tenant()
    served = {(m, p) for m, p, _ in mcp_docs.operations(app.openapi())}
    async with mcp(app, root) as m:
        for query in ["seal an invoice", "Z report", "webhook", "créer une facture", "api key", "zzz"]:
            hits = structured(await m.call_tool("search_api_docs", {"query": query, "limit": 8}))["results"]
            assert hits and all((h["method"], h["path"]) in served for h in hits), query
        top = structured(await m.call_tool("search_api_docs", {"query": "seal an invoice", "limit": 3}))["results"]
        assert ("POST", "/v1/invoices") in {(h["method"], h["path"]) for h in top}
        details = structured(await m.call_tool("get_endpoint_details", {"method": "POST", "path": "/v1/invoices"}))
        assert details["request_body"]["properties"]["lines"] and "201" in details["responses"]
        assert "Idempotency-Key" in {p["name"] for p in details["parameters"]}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_generated_example_compiles(app, tmp_path):
    """Every documented operation, in each language: Python by compile(), JavaScript by node --check, PHP by
    php -l (each where the tool is installed); the key is never in the code."""
    document = app.openapi()
    node, php = shutil.which("node"), shutil.which("php")
    checked = 0
    for method, path, _ in mcp_docs.operations(document):
        for language in mcp_docs.LANGUAGES:
            code = mcp_docs.code_example(document, method, path, language)["code"]
            assert "STALELA_API_KEY" in code and "sk_" not in code
            where = f"{language} {method} {path}"
            if language == "python":
                compile(code, where, "exec")
            elif language == "js" and node:
                target = tmp_path / f"example{checked}.mjs"  # a module: top-level await
                target.write_text(code, encoding="utf-8")
                done = subprocess.run([node, "--check", str(target)], capture_output=True, text=True)
                assert done.returncode == 0, f"{where}: {done.stderr}\n{code}"
            elif language == "php" and php:
                target = tmp_path / f"example{checked}.php"
                target.write_text(code, encoding="utf-8")
                done = subprocess.run([php, "-l", str(target)], capture_output=True, text=True)
                assert done.returncode == 0, f"{where}: {done.stdout}{done.stderr}\n{code}"
            checked += 1
    assert checked > 150


def _cli_env(settings, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALELA_")}
    env.update(STALELA_DATABASE_URL=settings.effective_database_url, STALELA_DATA_DIR=str(settings.data_dir),
               STALELA_MASTER_KEY=MASTER_KEY, STALELA_DEMO="false", STALELA_LOG_LEVEL="WARNING", **extra)
    return env


def _stalela() -> str:
    found = Path(sys.executable).parent / "stalela"
    return str(found) if found.exists() else shutil.which("stalela")


async def test_stdio_acts_as_the_key_in_the_environment(app, client, shop, settings):
    tenant, person, outlet = shop
    agent = await agent_key(client, tenant["root"])
    key = agent["Authorization"].split()[1]
    params = StdioServerParameters(command=_stalela(), args=["mcp", "--stdio"], env=_cli_env(settings, STALELA_API_KEY=key))
    async with Client(params, read_timeout_seconds=60) as m:
        names = {t.name for t in (await m.list_tools()).tools}
        assert "draft_invoice" in names and "get_usage" not in names  # the key's scopes, on stdio too
        d = structured(await m.call_tool("draft_invoice", {"text": "Facture: 3 sacs de ciment à 25000 FC"}))
        assert d["status"] == "draft"
        assert failure(await m.call_tool("seal_draft", {"draft_id": d["id"]}))["code"] == "draft_seal_disabled"
    assert await invoices(client, tenant["root"]) == []


def test_stdio_refuses_to_start_without_a_valid_key(settings):
    done = subprocess.run([_stalela(), "mcp", "--stdio"], env=_cli_env(settings), capture_output=True, text=True,
                          timeout=60, input="")
    assert done.returncode == 2 and "STALELA_API_KEY" in done.stderr
    done = subprocess.run([_stalela(), "mcp", "--stdio"], env=_cli_env(settings, STALELA_API_KEY="sk_live_wrong"),
                          capture_output=True, text=True, timeout=60, input="")
    assert done.returncode == 1 and "invalid API key" in done.stderr and done.stdout == ""


async def test_stalela_drafts_approve_is_a_persons_approval(client, shop, settings):
    tenant, person, outlet = shop
    root = tenant["root"]
    await policy(client, root, "approval")
    agent = await agent_key(client, root)
    d = await draft(client, agent)
    env = _cli_env(settings)
    shown = subprocess.run([_stalela(), "drafts", "show", d["id"], "--tenant", tenant["id"]], env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "Kin Marché SARL" in shown.stdout and "Total:" in shown.stdout
    done = subprocess.run([_stalela(), "drafts", "approve", d["id"], "--tenant", tenant["id"], "--by", "marie",
                           "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    approval = json.loads(done.stdout)
    assert approval["content_hash"] == d["content_hash"]
    s = await seal(client, agent, d["id"], approval["id"])
    assert s.status_code == 201, s.text
    log = (await client.get("/v1/audit-log", headers=root)).json()["data"]
    assert any(e["action"] == "invoice_draft.approved" and e["actor"] == "cli:marie" for e in log)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from tests.support.server import start_server

    server = start_server({"STALELA_OPERATOR_TOKEN": "op-examples", "STALELA_ARGON2_TIME_COST": "1",
                           "STALELA_ARGON2_MEMORY_KIB": "1024", "STALELA_ARGON2_PARALLELISM": "1"},
                          tmp_path_factory.mktemp("examples"))
    yield server
    server.stop()


def test_generated_examples_run_against_a_real_server(live, tmp_path):
    """Beyond compiling: the Python and JavaScript examples of a JSON read, a required query, a file answer and
    a 204, run as written against `stalela serve` with only their environment set."""
    import httpx

    from stalela.app import create_app
    from tests.conftest import make_settings

    base = live.base_url
    made = httpx.post(f"{base}/v1/tenants", json={"name": "Examples SARL", "tax_id": "EX1", "jurisdiction": "CD"},
                      headers={"Authorization": "Bearer op-examples"}, timeout=30).json()
    key = made["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    outlet = httpx.post(f"{base}/v1/outlets", json={"code": "EX1", "name": "Gombe"}, headers=auth, timeout=30).json()
    body = {"outlet_id": outlet["id"], "type": "FV", "lines": [{"description": "Sac", "quantity": "1",
                                                                "unit_price": "1000", "item_type": "BIE",
                                                                "tax_group": "B"}]}
    invoice = httpx.post(f"{base}/v1/invoices", json=body, headers={**auth, "Idempotency-Key": "ex-1"},
                         timeout=30).json()

    def hook() -> dict:  # one per run: each language deletes its own
        made = httpx.post(f"{base}/v1/webhook-endpoints", json={"url": "https://example.com/hook"}, headers=auth,
                          timeout=30)
        assert made.status_code == 201, made.text
        return {"ENDPOINT_ID": made.json()["id"]}

    document = create_app(make_settings("sqlite:///" + str(tmp_path / "doc.db"), tmp_path)).openapi()
    day = invoice["issued_at"][:10]
    cases = [("GET", "/v1/outlets", {}, "json"),
             ("GET", "/v1/a-reports", {"FROM": day, "TO": day}, "json"),
             ("GET", "/v1/invoices/{invoice_id}/pdf", {"INVOICE_ID": invoice["id"]}, "file"),
             ("DELETE", "/v1/webhook-endpoints/{endpoint_id}", hook, "none")]
    env = {**os.environ, "STALELA_URL": base, "STALELA_API_KEY": key}
    node = shutil.which("node")
    for method, path, extra, answer in cases:
        for language in ("python", "js") if node else ("python",):
            example = mcp_docs.code_example(document, method, path, language)
            target = tmp_path / ("run.py" if language == "python" else "run.mjs")
            target.write_text(example["code"], encoding="utf-8")
            command = [sys.executable, str(target)] if language == "python" else [node, str(target)]
            done = subprocess.run(command, env={**env, **(extra() if callable(extra) else extra)}, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, f"{language} {method} {path}: {done.stderr}\n{example['code']}"
            if answer == "file":
                assert (tmp_path / "pdf.out").read_bytes().startswith(b"%PDF")
            if answer == "json":
                assert done.stdout.strip()
            if answer == "none":
                assert done.stdout.strip() == "204"
