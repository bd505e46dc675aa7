"""A device that seals offline, for the merge tests: the payload from ``core.offline.invoice_payload`` (the
same builder the cloud checks against), the totals from the jurisdiction's engine, an ES256 signature by
the device key. Deliberately small: the SDK's offline sealer is the real one (tests/sdk)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from stalela.fiscal.core import invoice as core_invoice
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.disclosure import buyer_commitment, new_salt
from stalela.fiscal.core.seal import b64url_decode, b64url_encode, canonical_bytes
from stalela.fiscal.invoices.sealing import to_draft
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id
from tests.offline.support import es256, issue_credential, register_device
from tests.support.invoices import sample_invoice


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[1]))


def sign(key: ec.EllipticCurvePrivateKey, payload: dict[str, Any]) -> dict[str, Any]:
    data = canonical_bytes(payload)
    return {"payload": payload, "hash": hashlib.sha256(data).hexdigest(), "signature": b64url_encode(es256(key, data)),
            "key_id": payload["key_id"], "algorithm": "ES256"}


@dataclass
class Device:
    key: ec.EllipticCurvePrivateKey
    credential: str
    claims: dict[str, Any] = field(init=False)
    next: int = field(init=False)
    head: str = field(init=False)
    clock: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.claims = claims_of(self.credential)
        self.next, self.head = self.claims["block"]["first"], self.claims["block"]["anchor"]
        self.clock = datetime.fromtimestamp(self.claims["nbf"], timezone.utc) + timedelta(seconds=1)

    @property
    def thumbprint(self) -> str:
        return self.claims["cnf"]["jwk"]["kid"]

    def payload(self, request: dict[str, Any], *, counter: int, prev_hash: str, issued_at: datetime,
                salt: str | None) -> dict[str, Any]:
        c = self.claims
        jurisdiction = get_jurisdiction(c["jurisdiction"])
        body = InvoiceCreate.model_validate(request)
        computed = jurisdiction.compute(to_draft(body, jurisdiction), None)
        buyer = core.buyer_document(computed.buyer_as_json(), body.buyer.model_dump() if body.buyer else None)
        return core.invoice_payload(
            version=2, jurisdiction=jurisdiction.code, tenant_id=c["tenant_id"], seller_tax_id=c["seller_tax_id"],
            outlet_id=c["outlet"], series_id=c["series"], counter=counter,
            fiscal_number=jurisdiction.fiscal_number(c["outlet_code"], c["pos_number"], body.type, counter,
                                                     c["series_generation"]),
            invoice_id=new_id("inv"), type=body.type, price_mode=computed.price_mode, issued_at=rfc3339(issued_at),
            currency=computed.currency, totals=computed.totals_as_json(),
            lines_hash=core_invoice.lines_digest(computed.lines_as_json()), line_count=len(computed.lines),
            buyer_tax_id=core.clear_tax_id(buyer), buyer_commitment=buyer_commitment(salt, buyer) if buyer else None,
            nature=body.nature, original=body.original, exchange=computed.exchange_as_json(), key_id=self.thumbprint,
            prev_hash=prev_hash, series_first=c["series_first"],
            offline=core.offline_marker(c["jti"], c["block"]["id"], c["sub"]))

    def seal(self, request: dict[str, Any] | None = None, *, issued_at: datetime | None = None,
             key: ec.EllipticCurvePrivateKey | None = None, tamper=None) -> dict[str, Any]:  # noqa: ANN001
        """Seal the next invoice of the block and move the chain on; ``tamper(payload)`` edits before signing."""
        request = request or sample_invoice(self.claims["outlet"])
        if issued_at is None:  # a time given is this invoice's only: the device's clock goes on
            self.clock = issued_at = self.clock + timedelta(seconds=1)
        salt = new_salt() if request.get("buyer") else None
        payload = self.payload(request, counter=self.next, prev_hash=self.head, issued_at=issued_at, salt=salt)
        if tamper is not None:
            tamper(payload)
        seal = sign(key or self.key, payload)
        self.next, self.head = self.next + 1, seal["hash"]
        item = {"request": request, "seal": seal}
        if salt is not None:
            item["buyer_salt"] = salt
        return item

    def batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"credential": self.credential, "invoices": items}


async def offline_outlet(client, new_tenant, code: str = "SHOP"):  # noqa: ANN001, ANN201
    tenant, headers = await new_tenant()
    r = await client.post("/v1/outlets", json={"code": code, "name": "Shop"}, headers=headers)
    assert r.status_code == 201, r.text
    return tenant, headers, r.json()


async def new_device(client, headers: dict[str, str], tenant_id: str, outlet_id: str, **credential: Any) -> Device:  # noqa: ANN001
    device, key = await register_device(client, headers, tenant_id, outlet_id)
    issued = await issue_credential(client, headers, device["id"], **{"block_size": 10, **credential})
    return Device(key, issued["credential"])
