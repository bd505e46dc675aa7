"""stalela-sdk installs without the server: its wheel and stalela-core's, in a clean venv, verify invoices.

stalela-core is built from the server's own modules (sdk/core), never a copy; the clean venv proves that
an integrator gets the SDK and the shared core without FastAPI, SQLAlchemy or the server's settings.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_MODULES = ("fastapi", "starlette", "sqlalchemy", "pydantic", "stalela.config", "stalela.i18n", "stalela.db",
                  "stalela.fiscal.jurisdictions.labels")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def test_the_sdk_imports_only_the_pure_core_of_the_server():
    """In the dev venv too: importing the SDK (and every core module it ships) loads nothing of the server."""
    code = textwrap.dedent(f"""
        import sys, stalela_sdk, stalela_sdk.offline, stalela.fiscal.core.offline, stalela.fiscal.core.reports, stalela.fiscal.jurisdictions
        loaded = [m for m in sys.modules if any(m == s or m.startswith(s + ".") for s in {SERVER_MODULES!r})]
        print(loaded)
    """)
    env = _clean_env() | {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'sdk/python/src'}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _pip(python: Path | str, *args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], capture_output=True,
                          text=True, cwd=cwd, env=_clean_env(), timeout=timeout)


def _can_build_without_isolation() -> bool:
    """setuptools builds wheels alone from 70.1 on; before, it needs the ``wheel`` package."""
    out = subprocess.run([sys.executable, "-c", "import setuptools, importlib.util as u; v = tuple(int(x) for x in "
                          "setuptools.__version__.split('.')[:2]); print(v >= (70, 1) or u.find_spec('wheel') is not None)"],
                         capture_output=True, text=True)
    return out.stdout.strip() == "True"


@pytest.fixture(scope="module")
def index_or_skip(tmp_path_factory) -> None:
    probe = tmp_path_factory.mktemp("probe")
    out = _pip(sys.executable, "download", "--no-deps", "--dest", str(probe), "rfc8785", cwd=probe, timeout=120)
    if out.returncode != 0:
        pytest.skip(f"no package index reachable (pip download failed), the clean venv cannot get httpx, "
                    f"cryptography, joserfc: {out.stderr.strip()[-300:]}")


def test_wheels_install_and_verify_in_a_clean_venv(tmp_path, index_or_skip):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(ROOT / "src" / "stalela", tree / "src" / "stalela", ignore=ignore)
    for part in ("core", "python"):
        shutil.copytree(ROOT / "sdk" / part, tree / "sdk" / part, ignore=ignore)
    wheels = tmp_path / "wheels"
    flags = ["--no-build-isolation"] if _can_build_without_isolation() else []
    for part in ("core", "python"):
        built = _pip(sys.executable, "wheel", "--no-deps", *flags, "-w", str(wheels), str(tree / "sdk" / part),
                     cwd=tmp_path)
        assert built.returncode == 0, built.stderr[-3000:]
    core_wheel, = wheels.glob("stalela_core-*.whl")
    sdk_wheel, = wheels.glob("stalela_sdk-*.whl")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, env=_clean_env())
    python = venv / "bin" / "python"
    installed = _pip(python, "install", "--quiet", str(core_wheel), str(sdk_wheel), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]

    (tmp_path / "case.json").write_text(json.dumps(_sealed_case()))
    script = textwrap.dedent(f"""
        import importlib.util, json, sys
        {OFFLINE_SEAL}
        for name in ("fastapi", "sqlalchemy", "starlette", "pydantic"):
            assert importlib.util.find_spec(name) is None, name + " is importable"
        import stalela_sdk
        from stalela_sdk import Stalela, verify_invoice, verify_inclusion
        from stalela.fiscal.jurisdictions import jurisdiction_codes
        assert "stalela_sdk" in stalela_sdk.__file__ and "{ROOT}" not in stalela_sdk.__file__
        case = json.load(open("case.json"))
        ok = verify_invoice(case["invoice"], case["jwks"])
        assert ok, ok
        case["invoice"]["totals"]["total"] = "1.00"
        assert verify_invoice(case["invoice"], case["jwks"]).code == "document_altered"
        assert not verify_invoice(case["invoice"], case["jwks"], credential="e30.e30.")
        assert jurisdiction_codes() >= {{"CD", "AR"}}
        Stalela("sk_x", base_url="http://127.0.0.1:9").close()
        seal_one_offline()
        loaded = sorted(m for m in sys.modules if m.startswith("stalela."))
        print(json.dumps(loaded))
    """)
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path, env=_clean_env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert not any(m.startswith(("stalela.config", "stalela.i18n", "stalela.db")) for m in json.loads(out.stdout))


# Runs inside the clean venv: the offline sealer from the wheels alone, under a credential made with the
# core's own functions and a P-256 issuer key (no server), checked against that issuer's JWKS.
OFFLINE_SEAL = textwrap.indent(textwrap.dedent("""
    def seal_one_offline():
        import time
        from cryptography.hazmat.primitives.asymmetric import ec
        from stalela.fiscal.core import offline as core
        from stalela.fiscal.core.seal import public_jwk_from_public_key
        from stalela_sdk.offline import FileKey, InvoiceRefused, OfflineSealer

        device = FileKey.create("device.pem")
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer = FileKey(issuer_key)  # signs the raw r||s a JWS wants
        jwk = public_jwk_from_public_key(issuer_key.public_key(), "key_1")
        now = int(time.time())
        claims = {
            "iss": "https://cloud.example", "sub": "dev_1", "jti": "dcr_1", "vct": core.CREDENTIAL_VCT,
            "iat": now, "nbf": now, "exp": now + 3600, "tenant_id": "ten_1", "jurisdiction": "CD",
            "seller_tax_id": "CD-NIF-1", "cnf": {"jwk": device.public_jwk()}, "outlet": "out_1",
            "outlet_code": "SHOP", "pos_number": None, "series": "ser_1", "series_code": "main",
            "series_generation": 1, "series_first": 1,
            "block": {"id": "blk_1", "first": 1, "last": 10, "anchor": "ab" * 32},
            "caps": {"max_invoice_total": "1000000.00", "invoice_types": ["FV"], "tax_groups": ["A", "B"]},
            "status": {"status_list": {"idx": 0, "uri": "https://cloud.example/v1/status-lists/ten_1"}},
        }
        signing_input = core.credential_signing_input(
            {"alg": "ES256", "typ": core.CREDENTIAL_TYP, "kid": "key_1"}, claims)
        token = core.compact_jws(signing_input, issuer.sign(signing_input))
        with OfflineSealer("journal.db", device) as sealer:
            sealer.use_credential(token, {"key_1": jwk})
            line = {"description": "Pain", "item_type": "BIE", "tax_group": "B", "quantity": "2",
                    "unit_price": "100.00"}
            try:  # refused by the API's limits (core.limits), before any number is used
                sealer.seal({"type": "FV", "lines": [dict(line, quantity="1e-9999999")]})
                raise AssertionError("a quantity the API refuses was sealed")
            except InvoiceRefused as refused:
                assert refused.field == "lines[0].quantity", refused
            invoice = sealer.seal({"type": "FV", "reference": "t-1", "lines": [line]})
        assert invoice["counter"] == 1 and invoice["fiscal_number"], invoice
        ok = verify_invoice(invoice, {"keys": [jwk]}, credential=token)
        assert ok, ok
"""), "        ").lstrip()


def _sealed_case() -> dict:
    """An online invoice sealed by the server's own code path (the core), with its JWKS."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from stalela.fiscal.core.offline import invoice_payload
    from stalela.fiscal.core.seal import build_seal, canonical_bytes, public_jwk_from_public_key
    from stalela.kit import canonical

    key = ec.generate_private_key(ec.SECP256R1())
    lines = [{"index": 0, "description": "Pain", "code": None, "item_type": "BIE", "tax_group": "B",
              "quantity": "1", "unit_price": "100.00", "amount": "100.00"}]
    totals = {"groups": [], "total": "116.00", "vat_settled_by_credit": "0.00", "payable": "116.00"}
    payload = invoice_payload(version=2, jurisdiction="CD", tenant_id="ten_1", seller_tax_id="A1", outlet_id="out_1",
                              series_id="ser_1", counter=1, fiscal_number="MAIN-00000001", invoice_id="inv_1",
                              type="FV", price_mode="ht", issued_at="2026-11-22T12:00:00.000Z", currency="CDF",
                              totals=totals, lines_hash=hashlib.sha256(canonical.dumps(lines)).hexdigest(),
                              line_count=1, buyer_tax_id=None, buyer_commitment=None, nature=None, original=None,
                              exchange=None, key_id="sig_1", prev_hash="0" * 64)
    r, s = decode_dss_signature(key.sign(canonical_bytes(payload), ec.ECDSA(hashes.SHA256())))
    seal = build_seal(payload, r.to_bytes(32, "big") + s.to_bytes(32, "big"), "sig_1")
    doc = {"id": "inv_1", "lines": lines, **{k: payload[k] for k in (
        "tenant_id", "outlet_id", "fiscal_number", "counter", "type", "price_mode", "issued_at", "currency", "nature",
        "original", "totals", "exchange")}, "seal": seal}
    return {"invoice": doc, "jwks": {"keys": [public_jwk_from_public_key(key.public_key(), "sig_1")]}}
