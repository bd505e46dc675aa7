"""The CLI as scripts use it: results on stdout, diagnostics on stderr, --json, exit codes, no wrapping."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from stalela.cli import output
from stalela.cli.main import app

STALELA = str(Path(sys.executable).parent / "stalela")  # the installed console script, as an operator runs it
DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
ANSI = re.compile(r"\x1b\[")


def stalela(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([STALELA, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("cli")
    environment = {"PATH": "/usr/bin:/bin", "STALELA_DATA_DIR": str(data), "STALELA_LOG_LEVEL": "WARNING",
                   "STALELA_MASTER_KEY": "6d" * 32, "LANG": "C.UTF-8", "COLUMNS": "80"}
    migrated = stalela("migrate", env=environment)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == "migrations applied (1 database(s) at head)\n"
    assert "control-plane" in migrated.stderr  # the per-database progress is a diagnostic
    return environment


@pytest.fixture(scope="module")
def tenant(env) -> str:
    # A name longer than a terminal line: a piped listing must keep it on one line.
    r = stalela("tenant", "create", "--name", "Long Name " * 15 + "SARL", "--tax-id", "L1", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["tenant"]["id"]


def test_stdout_captures_the_key_and_stderr_the_diagnostics(env, tenant):
    r = stalela("apikey", "create", "--tenant", tenant, "--name", "till", env=env)
    assert r.returncode == output.EXIT_OK, r.stderr
    assert re.fullmatch(r"sk_\w+\n", r.stdout), r.stdout  # KEY=$(stalela apikey create …) is the key alone
    assert "shown once" in r.stderr and r.stdout.strip() not in r.stderr

    r = stalela("apikey", "create", "--tenant", tenant, "--name", "till", "--json", env=env)
    created = json.loads(r.stdout)  # one JSON document, nothing else on stdout
    assert created["api_key"].startswith("sk_") and created["id"].startswith("key_")
    assert r.stderr == ""


def test_json_documents_parse(env, tenant):
    listed = json.loads(stalela("tenant", "list", "--json", env=env).stdout)
    assert tenant in {t["id"] for t in listed}
    outlet = json.loads(stalela("outlet", "create", "--tenant", tenant, "--code", "J1", "--name", "J", "--json",
                                env=env).stdout)
    assert outlet["tenant_id"] == tenant
    keys = json.loads(stalela("keys", "list", "--tenant", tenant, "--json", env=env).stdout)
    assert keys["keys"] and keys["keys"][0]["status"] == "active"
    dead = stalela("outbox", "dead", "--json", env=env)
    assert json.loads(dead.stdout) == {"data": []} and dead.stderr == ""
    report = json.loads(stalela("report", "x", "--tenant", tenant, "--outlet", outlet["id"], "--json",
                                env=env).stdout)
    assert report["outlet_id"] == outlet["id"]


def test_exit_codes_as_documented(env, tenant):
    refused = stalela("apikey", "revoke", "--tenant", tenant, "key_nope", env=env)
    assert refused.returncode == output.EXIT_FAILED
    assert refused.stdout == "" and refused.stderr == "error api_key_not_found: no such API key\n"

    invalid = stalela("user", "create", "--tenant", tenant, "--email", "a@example.com", "--role", "boss",
                      "--password-stdin", env=env, stdin="a long enough password\n")
    assert invalid.returncode == output.EXIT_USAGE
    assert invalid.stderr.startswith("error invalid_role (role): unknown role")

    assert stalela("outlet", "create", "--no-such-option", env=env).returncode == output.EXIT_USAGE
    assert stalela("outlet", "create", "--tenant", tenant, "--name", "x", env=env).returncode == output.EXIT_USAGE

    away = {**env, "STALELA_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:9/nothing"}
    unavailable = stalela("tenant", "list", env=away)
    assert unavailable.returncode == output.EXIT_UNAVAILABLE
    assert unavailable.stderr.startswith("error database_unavailable: ") and "Traceback" not in unavailable.stderr


def test_the_exit_codes_table_of_the_docs_is_the_code():
    rows = re.findall(r"^\| `(\d)` \| `(EXIT_\w+)` \|", DOCS.read_text(), re.M)
    constants = {name: value for name, value in vars(output).items() if name.startswith("EXIT_")}
    assert {name: int(code) for code, name in rows} == constants


def test_errors_in_the_operators_language(env, tenant):
    for lang, sentence in [("fr_CD.UTF-8", "Cette clé d'API n'existe pas."),
                           ("es_AR.UTF-8", "Esta clave de API no existe.")]:
        r = stalela("apikey", "revoke", "--tenant", tenant, "key_nope", env={**env, "LANG": lang})
        assert r.stderr == f"error api_key_not_found: {sentence}\n"
    # LC_ALL wins over LANG, as for every POSIX program.
    r = stalela("apikey", "revoke", "--tenant", tenant, "key_nope", env={**env, "LANG": "fr_FR", "LC_ALL": "C"})
    assert r.stderr == "error api_key_not_found: no such API key\n"
    r = stalela("outlet", "create", "--tenant", tenant, "--code", "bad code!", "--name", "x", env={**env, "LANG": "fr"})
    assert r.returncode == output.EXIT_USAGE
    assert r.stderr == "error code: n'a pas la forme attendue (string_pattern_mismatch)\n"


def test_nothing_wraps_or_colours_when_piped(env, tenant, tmp_path):
    listing = stalela("tenant", "list", env=env).stdout.splitlines()
    line = next(li for li in listing if li.startswith(tenant))
    assert line.endswith("Long Name " * 14 + "Long Name SARL") and len(line) > 150

    missing = tmp_path / ("a-very-long-directory-name-" * 4) / "export.tar.gz"
    r = stalela("verify", str(missing), env=env)
    assert r.returncode == output.EXIT_USAGE
    assert str(missing) in r.stderr.splitlines()[0]  # one line however long, so grep finds it
    assert not ANSI.search(r.stderr)

    r = stalela("verify", "--tenant", tenant, env=env)
    assert r.returncode == output.EXIT_OK, r.stderr
    assert r.stdout.splitlines()[-1].startswith("VALID: ") and not ANSI.search(r.stdout)  # the verdict is the result
    forced = stalela("verify", "--tenant", tenant, env={**env, "FORCE_COLOR": "1"})
    assert ANSI.search(forced.stdout)  # coloured for a terminal: this guards the checks around it
    plain = stalela("verify", "--tenant", tenant, env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.stdout.splitlines()[-1].startswith("VALID: ") and not ANSI.search(plain.stdout)


def test_shell_completion():
    r = subprocess.run([STALELA, "--show-completion", "bash"], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/bash"})
    assert r.returncode == 0, r.stderr
    assert "_STALELA_COMPLETE" in r.stdout and "complete " in r.stdout
    helped = subprocess.run([STALELA, "--help"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert "--install-completion" in helped.stdout


# Commands that print no result: servers and workers run until stopped, simulators are servers too.
NO_RESULT = {"serve", "worker", "sealer", "simulate dgi", "simulate arca", "simulate shopify",
             "simulate mercadolibre", "simulate tiendanube", "simulate woocommerce", "mcp"}  # servers: they speak, they return nothing


def _commands(group, prefix: str = ""):  # noqa: ANN001 (typer's own click)
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from _commands(command, f"{path} ")
        else:
            yield path, command


def test_every_command_with_a_result_has_json():
    commands = dict(_commands(typer.main.get_command(app)))
    assert len(commands) > 30 and NO_RESULT <= set(commands)
    lacking = [path for path, command in commands.items()
               if path not in NO_RESULT and not any("--json" in p.opts for p in command.params)]
    assert not lacking, lacking
