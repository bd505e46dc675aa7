"""Helpers of the offline sealer's tests: the SDK on the path, a stand-in cloud key that signs credentials
exactly as the cloud does (``core.offline.credential_signing_input``), sample requests."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
SDK_SRC = ROOT / "sdk" / "python" / "src"
if str(SDK_SRC) not in sys.path:  # until stalela-sdk is installed in the dev venv (pip install -e sdk/python)
    sys.path.insert(0, str(SDK_SRC))

from stalela.fiscal.core import offline as core  # noqa: E402
from stalela.fiscal.core.seal import public_jwk_from_public_key  # noqa: E402
from tests.offline.support import es256  # noqa: E402


class Cloud:
    """A tenant signing key standing in for the cloud's, for tests without a server."""

    def __init__(self, kid: str = "key_test") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = public_jwk_from_public_key(self.key.public_key(), kid)
        self.jwks = {kid: self.jwk}

    def credential(self, device_jwk: dict[str, Any], *, first: int = 1, last: int = 100, lifetime: int = 72 * 3600,
                   nbf: int | None = None, caps: dict[str, Any] | None = None, header: dict[str, Any] | None = None,
                   **claims: Any) -> str:
        now = int(time.time()) if nbf is None else nbf
        body = {
            "iss": "https://cloud.example", "sub": "dev_test", "jti": "dcr_test", "vct": core.CREDENTIAL_VCT,
            "iat": now, "nbf": now, "exp": now + lifetime, "tenant_id": "ten_test", "jurisdiction": "CD",
            "seller_tax_id": "CD-NIF-1", "cnf": {"jwk": core.device_public_jwk(device_jwk)},
            "outlet": "out_test", "outlet_code": "SHOP", "pos_number": None, "series": "ser_test",
            "series_code": "main", "series_generation": 1, "series_first": 1,
            "block": {"id": "blk_test", "first": first, "last": last, "anchor": "ab" * 32},
            "caps": caps or {"max_invoice_total": "1000000.00", "invoice_types": ["EV", "FV"],
                             "tax_groups": list("ABCDEFGHIJKLMN")},
            "status": {"status_list": {"idx": 0, "uri": "https://cloud.example/v1/status-lists/ten_test"}},
        }
        body.update(claims)
        head = header or {"alg": "ES256", "typ": core.CREDENTIAL_TYP, "kid": self.jwk["kid"]}
        signing_input = core.credential_signing_input(head, body)
        return core.compact_jws(signing_input, es256(self.key, signing_input))


def request(i: int = 0, **overrides: Any) -> dict[str, Any]:
    body = {
        "type": "FV",
        "reference": f"ticket-{i}",
        "lines": [
            {"description": "Sac de riz 25 kg", "item_type": "BIE", "tax_group": "B", "quantity": "2",
             "unit_price": f"{45000 + i % 97}.00"},
            {"description": "Livraison", "item_type": "SER", "tax_group": "A", "quantity": "1", "unit_price": "5000"},
        ],
    }
    body.update(overrides)
    return body
