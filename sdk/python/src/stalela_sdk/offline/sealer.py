"""The offline sealer: seals invoices on a device, without the cloud, under a delegated credential.

What it shares with the cloud (imported, never copied): the jurisdiction's rules and totals
(``stalela.fiscal.jurisdictions``), the draft built from a request (``core.invoice.draft_from_request``,
the same function ``POST /v1/invoices`` uses), the payload builder and the credential check
(``core.offline``), buyer commitments (``core.disclosure``). So the cloud, recomputing a returned invoice
from its request, finds exactly the payload the device signed.

Life of a device (docs/offline.md, "The SDK"):
1. ``register(outlet_id, name)``: proves the key with a signed nonce; the cloud names the device.
2. ``fetch_credential(block_size=...)``: a block of numbers and the credential, checked against the
   cloud's JWKS and journalled (or ``use_credential(token, jwks)`` for one provisioned another way).
3. ``seal(request)``: offline; numbered, chained, signed and journalled before it returns.
4. ``upload()`` when back online: batches of at most 1,000 in order; each receipt journalled.
5. ``return_unused()``: a signed statement giving back the block's unused tail.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from stalela.errors import StalelaError
from stalela.fiscal.core import disclosure, limits
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.invoice import draft_from_request
from stalela.fiscal.core.seal import b64url_encode, build_seal, canonical_bytes
from stalela.fiscal.jurisdictions import get_jurisdiction
from stalela.kit.clock import rfc3339
from stalela.kit.ids import new_id

from stalela_sdk.offline.errors import (
    BlockExhausted, CredentialRejected, InvoiceRefused, NoCredential, OfflineError, UploadFailed,
)
from stalela_sdk.offline.journal import BlockRow, Journal
from stalela_sdk.offline.keys import DeviceKey
from stalela_sdk.offline.transport import Transport

# The seal format version of invoices (docs/seal-format.md): v2 commits to the buyer.
SEAL_VERSION = 2
MAX_BATCH = 1_000

class OfflineSealer:
    """``journal``: the SQLite file (created if absent). ``key``: a ``FileKey`` or ``Pkcs11Key``.
    ``base_url``/``api_key``: the cloud, for registration, credentials and uploads (an admin key to
    register and fetch credentials; ``invoices:write`` is enough to upload). ``clock``: the device's time."""

    def __init__(self, journal: str | Path, key: DeviceKey, *, base_url: str | None = None,
                 api_key: str | None = None, transport: Transport | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.journal = Journal(journal)
        self.key = key
        self.transport = transport or (Transport(base_url, api_key) if base_url else None)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._current: tuple[str, dict[str, Any]] | None = None

    def close(self) -> None:
        self.journal.close()
        if self.transport is not None:
            self.transport.close()

    def __enter__(self) -> "OfflineSealer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- online: registration and credentials -----------------------------------------------------------

    def _online(self) -> Transport:
        if self.transport is None:
            raise OfflineError("no cloud configured (base_url)", code="offline_no_cloud")
        return self.transport

    @property
    def device_id(self) -> str | None:
        return self.journal.get_meta("device_id")

    def register(self, outlet_id: str, name: str, tenant_id: str) -> dict[str, Any]:
        """Register this device's key for ``outlet_id``: ask a nonce, sign ``core.registration_message``,
        post the public key. Idempotent for this journal: a registered device is returned as it is."""
        known = self.journal.get_meta("device")
        if known is not None:
            return json.loads(known)
        http = self._online()
        nonce = http.request("POST", "/v1/devices/challenges")["nonce"]
        jwk = self.key.public_jwk()
        proof = b64url_encode(self.key.sign(core.registration_message(nonce, tenant_id, self.key.thumbprint)))
        public = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
        device = http.request("POST", "/v1/devices", json={"name": name, "outlet_id": outlet_id, "public_key": public,
                                                          "nonce": nonce, "proof": proof})
        self.journal.set_meta({"device_id": device["id"], "device": json.dumps(device), "tenant_id": tenant_id})
        return device

    def jwks(self) -> dict[str, dict[str, Any]]:
        """The cloud's public keys by id (public, no authentication)."""
        keys = self._online().request("GET", "/.well-known/jwks.json", auth=False)["keys"]
        return {k["kid"]: k for k in keys}

    def fetch_credential(self, *, block_size: int = 500, lifetime_hours: float = 72, invoice_type: str | None = None,
                         caps: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new credential and block for this device, verified against the cloud's JWKS, then journalled.
        Returns its claims."""
        device_id = self.device_id
        if device_id is None:
            raise OfflineError("register the device first", code="offline_not_registered")
        body: dict[str, Any] = {"block_size": block_size, "lifetime_hours": lifetime_hours}
        if invoice_type:
            body["invoice_type"] = invoice_type
        if caps:
            body["caps"] = caps
        issued = self._online().request("POST", f"/v1/devices/{device_id}/credentials", json=body, idempotent_key=True)
        return self.use_credential(issued["credential"], self.jwks())

    def use_credential(self, token: str, jwks: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Check a credential (``core.offline.verify_credential``: ES256 only, lifetime at most 7 days, valid
        now, ``cnf`` = this device's key) and make it the one seals use. Returns its claims."""
        try:
            claims = core.verify_credential(token, jwks.get, self.clock())
        except core.CredentialInvalid as exc:
            raise CredentialRejected(str(exc), code=exc.code) from exc
        if claims["cnf"]["jwk"].get("kid") != self.key.thumbprint \
                or core.jwk_thumbprint(claims["cnf"]["jwk"]) != self.key.thumbprint:
            raise CredentialRejected("the credential binds another device key", code="credential_wrong_key")
        device_id = self.device_id
        if device_id is not None and claims["sub"] != device_id:
            raise CredentialRejected("the credential was issued to another device", code="credential_wrong_device")
        if device_id is None:
            self.journal.set_meta({"device_id": claims["sub"], "tenant_id": claims["tenant_id"]})
        self.journal.add_credential(token, claims, rfc3339(self.clock()))
        self._current = None
        return claims

    def credential(self) -> tuple[str, dict[str, Any]]:
        """The credential seals use now (token, claims)."""
        if self._current is None:
            jti = self.journal.get_meta("current")
            found = self.journal.credential(jti) if jti else None
            if found is None:
                raise NoCredential("no credential: fetch_credential() or use_credential() first")
            self._current = found
        return self._current

    def block(self) -> BlockRow:
        _, claims = self.credential()
        block = self.journal.block(claims["block"]["id"])
        assert block is not None
        return block

    # --- offline: sealing -----------------------------------------------------------------------------

    def seal(self, invoice_request: dict[str, Any]) -> dict[str, Any]:
        """Seal one invoice offline. The request is what ``POST /v1/invoices`` takes (amounts as decimal
        strings or integers; ``outlet_id`` may be left out). Refused locally (``InvoiceRefused``, nothing
        numbered) when it breaks a rule or a cap. Returns the sealed invoice once it is durably journalled."""
        token, claims = self.credential()
        now = self.clock()
        if not claims["nbf"] <= now.timestamp() < claims["exp"]:
            code = "credential_expired" if now.timestamp() >= claims["exp"] else "credential_not_yet_valid"
            raise CredentialRejected("the credential is not valid at the device's time", code=code)
        request = normalize_request(invoice_request, claims["outlet"])
        if request.get("reference") is not None and self.journal.reference_taken(request["reference"]):
            raise InvoiceRefused("this reference was already sealed", code="reference_already_used", field="reference")
        computed = compute(request, claims)
        buyer = core.buyer_document(computed.buyer_as_json(), request.get("buyer"))
        salt = disclosure.new_salt() if buyer is not None else None
        jurisdiction = get_jurisdiction(claims["jurisdiction"])
        block_id = claims["block"]["id"]
        with self.journal.write() as db:
            # Numbered under the journal's write lock: the block is read inside the transaction.
            block = self.journal.block(block_id, db)
            if block.return_statement is not None or block.next > block.last:
                raise BlockExhausted(f"block {block_id} has no number left: fetch a new credential")
            counter, invoice_id = block.next, new_id("inv")
            payload = core.invoice_payload(
                version=SEAL_VERSION, jurisdiction=jurisdiction.code, tenant_id=claims["tenant_id"],
                seller_tax_id=claims.get("seller_tax_id"), outlet_id=claims["outlet"], series_id=claims["series"],
                counter=counter, fiscal_number=jurisdiction.fiscal_number(
                    claims["outlet_code"], claims.get("pos_number"), request["type"], counter,
                    claims.get("series_generation", 1)),
                invoice_id=invoice_id, type=request["type"], price_mode=computed.price_mode, issued_at=rfc3339(now),
                currency=computed.currency, totals=computed.totals_as_json(), lines_hash=computed.lines_digest(),
                line_count=len(computed.lines), buyer_tax_id=core.clear_tax_id(buyer),
                buyer_commitment=disclosure.buyer_commitment(salt, buyer) if buyer is not None else None,
                nature=request.get("nature"), original=request.get("original"),
                exchange=computed.exchange_as_json(), key_id=self.key.thumbprint, prev_hash=block.head,
                series_first=claims.get("series_first", 1),
                offline=core.offline_marker(claims["jti"], block_id, claims["sub"]))
            signed = canonical_bytes(payload)
            seal = build_seal(payload, self.key.sign(signed), self.key.thumbprint, canonical_payload=signed)
            document = _document(payload, computed, request, buyer, salt, seal, claims)
            db.execute("INSERT INTO invoices (block_id, counter, invoice_id, fiscal_number, reference, request, seal_hash,"
                       " document, buyer_salt, sealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (block_id, counter, invoice_id, payload["fiscal_number"], request.get("reference"),
                        json.dumps(request), seal["hash"], json.dumps(document), salt, payload["issued_at"]))
            db.execute("UPDATE blocks SET next = ?, head = ? WHERE id = ?", (counter + 1, seal["hash"], block_id))
        return document

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        """A journalled invoice with its upload status and receipt."""
        return self.journal.invoice(invoice_id)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device_id": self.device_id, "invoices": self.journal.counts(), "blocks": []}
        for b in self.journal.blocks():
            out["blocks"].append({"id": b.id, "credential": b.jti, "first": b.first, "last": b.last, "next": b.next,
                                  "remaining": 0 if b.return_statement else b.remaining,
                                  "returned": b.return_statement is not None})
        return out

    # --- back online: upload and return -----------------------------------------------------------------

    def upload(self, batch_size: int = MAX_BATCH) -> dict[str, int]:
        """Post every journalled invoice not merged or refused yet, block by block, in device order, in
        batches of at most ``batch_size`` (≤ 1,000); journal each receipt. Stops at a block whose
        invoices are ``held`` (a gap before them: nothing to gain by sending what follows). Returns the
        outcomes counted."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size is 1 to {MAX_BATCH}")
        http = self._online()
        totals: dict[str, int] = {}
        for block in self.journal.blocks():
            found = self.journal.credential(block.jti)
            assert found is not None
            token = found[0]
            while True:
                pending = self.journal.pending(block.id, batch_size)
                if not pending:
                    break
                body = {"credential": token, "invoices": [
                    {"request": p["request"], "seal": p["seal"],
                     **({"buyer_salt": p["buyer_salt"]} if p["buyer_salt"] else {})} for p in pending]}
                answer = http.request("POST", "/v1/offline/batches", json=body)
                receipts = match_receipts(answer, pending)
                self.journal.record_receipts(block.id, receipts, rfc3339(self.clock()))
                for _, outcome, _ in receipts:
                    totals[outcome] = totals.get(outcome, 0) + 1
                if any(outcome not in ("merged", "refused") for _, outcome, _ in receipts):
                    break  # held: the cloud waits for a number before these; retry later
        return totals

    def return_unused(self, block_id: str | None = None) -> dict[str, Any] | None:
        """Give the block's unused tail back (a device-signed ``block_return`` statement): the cloud voids
        those numbers now rather than at expiry. Uploads first (the statement must follow the last
        invoice). The statement is journalled before it is sent, and the block seals no more. None when
        no number is left."""
        block = self.journal.block(block_id) if block_id else self.block()
        if block is None:
            raise OfflineError(f"no block {block_id} in this journal", code="offline_block_unknown")
        if block.return_answer is not None:
            return block.return_answer
        found = self.journal.credential(block.jti)
        assert found is not None
        claims = found[1]
        statement = block.return_statement
        if statement is None:
            with self.journal.write() as db:
                block = self.journal.block(block.id, db)
                if block.next > block.last:
                    return None
                payload = return_payload(tenant_id=claims["tenant_id"], block_id=block.id, credential=claims["jti"],
                                         first=block.next, last=block.last, prev_hash=block.head,
                                         at=rfc3339(self.clock()))
                signed = canonical_bytes(payload)
                statement = build_seal(payload, self.key.sign(signed), self.key.thumbprint, canonical_payload=signed)
                db.execute("UPDATE blocks SET return_statement = ? WHERE id = ?", (json.dumps(statement), block.id))
        self.upload()
        if self.journal.pending(block.id, 1):
            raise UploadFailed("invoices of this block are still waiting for the cloud; upload them first",
                               code="offline_upload_incomplete")
        answer = self._online().request("POST", f"/v1/offline/blocks/{block.id}/return", json=statement)
        with self.journal.write() as db:
            db.execute("UPDATE blocks SET return_answer = ? WHERE id = ?", (json.dumps(answer), block.id))
        return answer


# --- pure helpers ------------------------------------------------------------------------------------------


def normalize_request(request: dict[str, Any], outlet_id: str) -> dict[str, Any]:
    """The request as JSON will carry it (Decimal and dates as strings), with the credential's outlet,
    checked against the API's limits (``core.limits``: the schema of POST /v1/invoices, restated).
    Floats are refused: a float has already lost the amount meant (0.1 is not one tenth), and the cloud
    must read back exactly the amounts the device computed with."""
    if not isinstance(request, dict):
        raise InvoiceRefused("an invoice request is a JSON object", code="offline_request_invalid")
    given = request.get("outlet_id")
    if given is not None and given != outlet_id:
        raise InvoiceRefused("the credential seals for another outlet", code="offline_outlet_mismatch", field="outlet_id")
    _no_floats(request, "")
    try:
        out = json.loads(json.dumps({**request, "outlet_id": outlet_id}, default=_json_value))
    except (TypeError, ValueError) as exc:
        raise InvoiceRefused(f"the request is not JSON: {exc}", code="offline_request_invalid") from exc
    # The API's own limits (members, lengths, at most 18 digits per amount, dates), so that nothing the
    # cloud would refuse at the merge is sealed and numbered here.
    try:
        limits.check_invoice_request(out)
    except limits.RequestInvalid as exc:
        raise InvoiceRefused(f"the request is not a valid invoice: {exc}", code="offline_request_invalid",
                             field=exc.field or None) from exc
    if not out.get("lines"):
        raise InvoiceRefused("an invoice has at least one line", code="offline_request_invalid", field="lines")
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _no_floats(value: Any, at: str) -> None:
    if isinstance(value, float):
        raise InvoiceRefused("amounts are decimal strings or integers, never floats", code="offline_float_amount",
                             field=at)
    if isinstance(value, dict):
        for k, v in value.items():
            _no_floats(v, f"{at}.{k}" if at else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_floats(v, f"{at}[{i}]")


def compute(request: dict[str, Any], claims: dict[str, Any]) -> Any:
    """The jurisdiction's computation of the request (the cloud's own), then the credential's caps."""
    _no_floats(request, "")
    jurisdiction = get_jurisdiction(claims["jurisdiction"])
    caps = claims.get("caps") or {}
    if request.get("type") not in caps.get("invoice_types", ()):
        raise InvoiceRefused(f"type {request.get('type')!r} may not be sealed offline under this credential",
                             code="offline_type_not_allowed", field="type")
    try:
        computed = jurisdiction.compute(draft_from_request(request, jurisdiction.currency), None)
    except StalelaError as exc:
        raise InvoiceRefused(exc.detail, code=exc.code,
                             field=getattr(exc, "field", None)) from exc
    if computed.extra is not None:
        raise InvoiceRefused("this jurisdiction's invoices cannot be sealed offline", code="offline_not_supported")
    allowed = set(caps.get("tax_groups", ()))
    for line in computed.lines:
        if line.tax_group not in allowed:
            raise InvoiceRefused(f"tax group {line.tax_group} is not allowed offline by the credential",
                                 code="offline_tax_group_not_allowed", field=f"lines[{line.index}].tax_group")
    if "max_invoice_total" in caps and computed.total > Decimal(caps["max_invoice_total"]):
        raise InvoiceRefused(f"total {computed.total} exceeds the credential's cap {caps['max_invoice_total']}",
                             code="offline_cap_exceeded", field="lines")
    return computed


def _document(payload: dict[str, Any], computed: Any, request: dict[str, Any], buyer: dict[str, Any] | None,
              salt: str | None, seal: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
    """The sealed invoice as the device shows it (the shape of an online one, plus ``offline``)."""
    return {
        "id": payload["invoice_id"], "object": "invoice", "tenant_id": payload["tenant_id"],
        "outlet_id": payload["outlet_id"], "fiscal_number": payload["fiscal_number"], "counter": payload["counter"],
        "type": payload["type"], "price_mode": payload["price_mode"], "issued_at": payload["issued_at"],
        "currency": payload["currency"], "reference": request.get("reference"), "buyer": buyer, "buyer_salt": salt,
        "nature": payload["nature"], "original": payload["original"], "payments": computed.payments_as_json(),
        "exchange": payload["exchange"], "lines": computed.lines_as_json(), "totals": payload["totals"],
        # Where the customer checks it once merged (the public verification page of the credential's issuer).
        "qr": f"{claims['iss'].rstrip('/')}/verify/{payload['invoice_id']}?t={payload['tenant_id']}",
        "offline": payload["offline"], "seal": seal,
    }


def return_payload(**fields: Any) -> dict[str, Any]:
    """``core.offline.return_payload`` (the statement the cloud checks), with the same fields when an older
    core lacks it."""
    builder = getattr(core, "return_payload", None)
    if builder is not None:
        return builder(**fields)
    return {"kind": core.RETURN, **fields}


def match_receipts(answer: dict[str, Any], sent: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    """``(counter, outcome, receipt)`` for each invoice sent, from the batch's answer. Receipts are matched
    by counter (or the device seal's hash) when they carry one, else by position."""
    items = next((answer[k] for k in ("receipts", "results", "invoices", "items", "data")
                  if isinstance(answer.get(k), list)), None)
    if items is None:
        raise UploadFailed("the batch's answer holds no receipts", code="offline_answer_unreadable", answer=answer)
    by_counter = {p["counter"]: p for p in sent}
    by_hash = {p["hash"]: p for p in sent}
    out = []
    for i, receipt in enumerate(items):
        counter = receipt.get("counter", receipt.get("number"))
        digest = receipt.get("device_hash") or receipt.get("seal_hash") or receipt.get("hash")
        if counter in by_counter:
            p = by_counter[counter]
        elif digest in by_hash:
            p = by_hash[digest]
        elif i < len(sent):
            p = sent[i]
        else:
            continue
        outcome = receipt.get("outcome") or receipt.get("status") or "held"
        out.append((p["counter"], outcome if outcome in ("merged", "refused", "held") else "held", receipt))
    return out
