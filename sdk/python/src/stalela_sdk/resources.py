"""Every REST resource an integrator uses, written once for both clients.

A method here only says which route and which body (thin, so it follows the API: docs/api.md and
docs/offline.md are the reference for fields and answers). It returns what the client's ``_request``
returns: the decoded JSON (or bytes) with ``Stalela``, an awaitable of it with ``AsyncStalela``.
``list_all`` returns an iterator (sync) or an async iterator (async) over every item of a list, following
``starting_after`` cursors.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol

from stalela_sdk._http import new_idempotency_key

JSON = dict[str, Any]


class Requester(Protocol):
    def _request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                 idempotency_key: str | None = None, raw: bool = False, repeatable: bool = False) -> Any: ...

    def _paginate(self, url: str, params: Mapping[str, Any] | None = None) -> Any: ...


class Resource:
    def __init__(self, client: Requester) -> None:
        self._client = client

    def _req(self, method: str, url: str, **kw: Any) -> Any:
        return self._client._request(method, url, **kw)


def _body(fields: Mapping[str, Any]) -> JSON:
    """A request body without the arguments left out (``None``), so server defaults apply."""
    return {k: v for k, v in fields.items() if v is not None}


def _args(names: Mapping[str, Any]) -> JSON:
    """A method's own keyword arguments (``locals()``) as query parameters or a body, ``None`` left out."""
    return {k: v for k, v in names.items() if k != "self" and v is not None}


def _format(fmt: str) -> bool:
    return fmt != "json"


class Invoices(Resource):
    def create(self, invoice: Mapping[str, Any], *, idempotency_key: str | None = None) -> Any:
        """Seal one invoice (201). Without ``idempotency_key`` one is generated and reused on retries."""
        return self._req("POST", "/v1/invoices", json=dict(invoice), idempotency_key=idempotency_key)

    def credit_note(self, *, outlet_id: str, original: str, nature: str, lines: list[Mapping[str, Any]],
                    type: str = "FA", idempotency_key: str | None = None, **fields: Any) -> Any:
        """A credit note against ``original`` (its fiscal number): positive amounts, ``nature`` COR/RAN/RAM/RRR."""
        body = {"outlet_id": outlet_id, "type": type, "nature": nature, "original": original,
                "lines": [dict(x) for x in lines], **fields}
        return self.create(body, idempotency_key=idempotency_key)

    def batch(self, items: Iterable[Mapping[str, Any]]) -> Any:
        """Seal up to ``STALELA_BATCH_MAX_INVOICES`` invoices in order (200, one result per item).

        An item is an invoice, or ``{"invoice": ..., "idempotency_key": ...}``. Items without a key get one,
        so retrying the whole batch after a lost answer replays what was sealed instead of sealing again."""
        out = []
        for item in items:
            if "invoice" in item:
                out.append({"invoice": dict(item["invoice"]),
                            "idempotency_key": item.get("idempotency_key") or new_idempotency_key()})
            else:
                out.append({"invoice": dict(item), "idempotency_key": new_idempotency_key()})
        return self._req("POST", "/v1/invoices/batch", json={"items": out}, repeatable=True)

    def get(self, invoice_id: str) -> Any:
        return self._req("GET", f"/v1/invoices/{invoice_id}")

    def list(self, *, limit: int | None = None, starting_after: str | None = None, outlet_id: str | None = None,
             type: str | None = None, fiscal_number: str | None = None, issued_at_gte: str | None = None,
             issued_at_lt: str | None = None) -> Any:
        return self._req("GET", "/v1/invoices", params=_args(locals()))

    def list_all(self, *, limit: int = 100, outlet_id: str | None = None, type: str | None = None,
                 fiscal_number: str | None = None, issued_at_gte: str | None = None,
                 issued_at_lt: str | None = None) -> Any:
        return self._client._paginate("/v1/invoices", _args(locals()))

    def pdf(self, invoice_id: str, *, layout: str | None = None, lang: str | None = None) -> Any:
        """The PDF's bytes (``layout`` a4 or receipt; ``lang`` fr, es, en)."""
        return self._req("GET", f"/v1/invoices/{invoice_id}/pdf", params=_body({"layout": layout, "lang": lang}),
                         raw=True)

    def proof(self, invoice_id: str, *, tree_size: int | None = None) -> Any:
        """Its inclusion proof in the tenant's Merkle log (check it with ``stalela_sdk.verify_inclusion``)."""
        return self._req("GET", f"/v1/invoices/{invoice_id}/proof", params=_body({"tree_size": tree_size}))


class Outlets(Resource):
    def create(self, *, code: str, name: str, timezone: str | None = None, address: str | None = None,
               pos_number: int | None = None) -> Any:
        return self._req("POST", "/v1/outlets", json=_args(locals()))

    def get(self, outlet_id: str) -> Any:
        return self._req("GET", f"/v1/outlets/{outlet_id}")

    def update(self, outlet_id: str, **fields: Any) -> Any:
        """``name``, ``timezone``, ``address``, ``status`` (active / inactive)."""
        return self._req("PATCH", f"/v1/outlets/{outlet_id}", json=fields)

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/outlets", params=_body({"limit": limit, "starting_after": starting_after}))

    def list_all(self, *, limit: int = 100) -> Any:
        return self._client._paginate("/v1/outlets", {"limit": limit})


class ApiKeys(Resource):
    def create(self, *, name: str, outlet_id: str | None = None, scopes: list[str] | None = None) -> Any:
        """The secret (``api_key``) is in this answer only."""
        return self._req("POST", "/v1/api-keys", json=_args(locals()))

    def get(self, key_id: str) -> Any:
        return self._req("GET", f"/v1/api-keys/{key_id}")

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/api-keys", params=_body({"limit": limit, "starting_after": starting_after}))

    def list_all(self, *, limit: int = 100) -> Any:
        return self._client._paginate("/v1/api-keys", {"limit": limit})

    def revoke(self, key_id: str) -> Any:
        return self._req("DELETE", f"/v1/api-keys/{key_id}")


class Reports(Resource):
    """Z (day closed, sealed), X (the open day so far) and A (a period) reports. ``format`` other than json
    (pdf, csv, xlsx) answers bytes."""

    def close_z(self, outlet_id: str, *, business_day: str | None = None) -> Any:
        body = {"business_day": business_day} if business_day else None
        # Closing a closed day answers it again (200), so a retry after a lost answer is harmless.
        return self._req("POST", f"/v1/outlets/{outlet_id}/z-reports", json=body, repeatable=True)

    def get_z(self, z_report_id: str, *, format: str = "json", lang: str | None = None) -> Any:
        params = _body({"format": None if format == "json" else format, "lang": lang})
        return self._req("GET", f"/v1/z-reports/{z_report_id}", params=params, raw=_format(format))

    def list_z(self, *, outlet_id: str | None = None, business_day_gte: str | None = None,
               business_day_lt: str | None = None, limit: int | None = None,
               starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/z-reports", params=_args(locals()))

    def list_z_all(self, *, outlet_id: str | None = None, business_day_gte: str | None = None,
                   business_day_lt: str | None = None, limit: int = 100) -> Any:
        return self._client._paginate("/v1/z-reports", _args(locals()))

    def x(self, outlet_id: str, *, business_day: str | None = None, format: str = "json",
          lang: str | None = None) -> Any:
        params = _body({"business_day": business_day, "format": None if format == "json" else format, "lang": lang})
        return self._req("GET", f"/v1/outlets/{outlet_id}/x-report", params=params, raw=_format(format))

    def a(self, *, from_: str, to: str, outlet_id: str | None = None, format: str = "json",
          lang: str | None = None) -> Any:
        params = _body({"from": from_, "to": to, "outlet_id": outlet_id,
                        "format": None if format == "json" else format, "lang": lang})
        return self._req("GET", "/v1/a-reports", params=params, raw=_format(format))


class WebhookEndpoints(Resource):
    def create(self, *, url: str, event_types: list[str] | None = None, description: str | None = None,
               enabled: bool | None = None) -> Any:
        """The signing ``secret`` is in this answer only (keep it for ``stalela_sdk.Webhook``)."""
        return self._req("POST", "/v1/webhook-endpoints", json=_args(locals()))

    def get(self, endpoint_id: str) -> Any:
        return self._req("GET", f"/v1/webhook-endpoints/{endpoint_id}")

    def update(self, endpoint_id: str, **fields: Any) -> Any:
        """``url``, ``description``, ``event_types`` (None: all), ``enabled``: sent as given, None included."""
        return self._req("PATCH", f"/v1/webhook-endpoints/{endpoint_id}", json=fields)

    def delete(self, endpoint_id: str) -> Any:
        return self._req("DELETE", f"/v1/webhook-endpoints/{endpoint_id}")

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/webhook-endpoints",
                         params=_body({"limit": limit, "starting_after": starting_after}))

    def list_all(self, *, limit: int = 100) -> Any:
        return self._client._paginate("/v1/webhook-endpoints", {"limit": limit})

    def rotate_secret(self, endpoint_id: str, *, grace_seconds: int | None = None) -> Any:
        body = {"grace_seconds": grace_seconds} if grace_seconds is not None else None
        return self._req("POST", f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", json=body)

    def test(self, endpoint_id: str) -> Any:
        return self._req("POST", f"/v1/webhook-endpoints/{endpoint_id}/test")

    def messages(self, endpoint_id: str, *, status: str | None = None, event_type: str | None = None,
                 limit: int | None = None, starting_after: str | None = None) -> Any:
        params = _body({"status": status, "event_type": event_type, "limit": limit, "starting_after": starting_after})
        return self._req("GET", f"/v1/webhook-endpoints/{endpoint_id}/messages", params=params)

    def messages_all(self, endpoint_id: str, *, status: str | None = None, event_type: str | None = None,
                     limit: int = 100) -> Any:
        return self._client._paginate(f"/v1/webhook-endpoints/{endpoint_id}/messages",
                                      _body({"status": status, "event_type": event_type, "limit": limit}))

    def message(self, endpoint_id: str, msg_id: str) -> Any:
        return self._req("GET", f"/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}")

    def attempts(self, endpoint_id: str, msg_id: str) -> Any:
        return self._req("GET", f"/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}/attempts")

    def retry(self, endpoint_id: str, msg_id: str) -> Any:
        return self._req("POST", f"/v1/webhook-endpoints/{endpoint_id}/messages/{msg_id}/retry")

    def recover(self, endpoint_id: str, *, since: str, until: str | None = None) -> Any:
        return self._req("POST", f"/v1/webhook-endpoints/{endpoint_id}/recover",
                         json=_body({"since": since, "until": until}))


class Ledger(Resource):
    def create_checkpoint(self) -> Any:
        """Sign the current tree head now (201)."""
        return self._req("POST", "/v1/ledger/checkpoints")

    def latest_checkpoint(self) -> Any:
        return self._req("GET", "/v1/ledger/checkpoints/latest")

    def checkpoints(self, *, min_tree_size: int | None = None, max_tree_size: int | None = None,
                    limit: int | None = None, starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/ledger/checkpoints", params=_args(locals()))

    def checkpoints_all(self, *, min_tree_size: int | None = None, max_tree_size: int | None = None,
                        limit: int = 100) -> Any:
        return self._client._paginate("/v1/ledger/checkpoints", _args(locals()))

    def inclusion_proof(self, invoice_id: str, *, tree_size: int | None = None) -> Any:
        return self._req("GET", f"/v1/invoices/{invoice_id}/proof", params=_body({"tree_size": tree_size}))

    def consistency_proof(self, first: int, second: int) -> Any:
        return self._req("GET", "/v1/ledger/consistency", params={"first": first, "second": second})


class Keys(Resource):
    """The tenant signing keys: public, no credential needed."""

    def get(self, key_id: str) -> Any:
        return self._req("GET", f"/v1/keys/{key_id}")

    def jwks(self) -> Any:
        """Every key, retired ones included: what ``verify_invoice`` and the proofs are checked against."""
        return self._req("GET", "/.well-known/jwks.json")


class Devices(Resource):
    """Offline devices and their delegated credentials (docs/offline.md)."""

    def challenge(self) -> Any:
        """A single-use nonce valid 60 s, to sign with the device key (``core.offline.registration_message``)."""
        return self._req("POST", "/v1/devices/challenges")

    def register(self, *, name: str, outlet_id: str, public_key: Mapping[str, Any], nonce: str, proof: str) -> Any:
        return self._req("POST", "/v1/devices", json={"name": name, "outlet_id": outlet_id,
                                                      "public_key": dict(public_key), "nonce": nonce, "proof": proof})

    def get(self, device_id: str) -> Any:
        return self._req("GET", f"/v1/devices/{device_id}")

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/devices", params=_body({"limit": limit, "starting_after": starting_after}))

    def list_all(self, *, limit: int = 100) -> Any:
        return self._client._paginate("/v1/devices", {"limit": limit})

    def issue_credential(self, device_id: str, **fields: Any) -> Any:
        """Allocate a block and issue a credential; ``fields`` as docs/offline.md lists (size, lifetime, caps)."""
        return self._req("POST", f"/v1/devices/{device_id}/credentials", json=fields)

    def revoke_credential(self, device_id: str, jti: str, **fields: Any) -> Any:
        return self._req("POST", f"/v1/devices/{device_id}/credentials/{jti}/revoke", json=fields or None)


class Offline(Resource):
    """Returning what a device sealed offline, and its number blocks."""

    def upload_batch(self, *, credential: str, invoices: list[Mapping[str, Any]],
                     return_statement: Mapping[str, Any] | None = None) -> Any:
        """``invoices``: ``{"request", "seal", "buyer_salt"?}`` in device order. The merge is idempotent
        (the same batch again answers the same receipts), so it is retried like a GET."""
        body: JSON = {"credential": credential, "invoices": [dict(i) for i in invoices]}
        if return_statement is not None:
            body["return"] = dict(return_statement)
        return self._req("POST", "/v1/offline/batches", json=body, repeatable=True)

    def blocks(self, *, device_id: str | None = None, status: str | None = None, limit: int | None = None,
               starting_after: str | None = None) -> Any:
        return self._req("GET", "/v1/offline/blocks", params=_args(locals()))

    def blocks_all(self, *, device_id: str | None = None, status: str | None = None, limit: int = 100) -> Any:
        return self._client._paginate("/v1/offline/blocks", _args(locals()))

    def block(self, block_id: str) -> Any:
        return self._req("GET", f"/v1/offline/blocks/{block_id}")

    def return_block(self, block_id: str, statement: Mapping[str, Any]) -> Any:
        """Give back the unused tail: ``statement`` is the device-signed ``block_return`` seal (idempotent)."""
        return self._req("POST", f"/v1/offline/blocks/{block_id}/return", json=dict(statement), repeatable=True)

    def status_list(self, uri: str) -> Any:
        """A credential's status list, from the public URL in its ``status.status_list.uri`` claim."""
        return self._req("GET", uri)


class Tenants(Resource):
    """Operator routes (the operator token): enough to script a tenant's creation."""

    def create(self, *, name: str, tax_id: str, jurisdiction: str = "CD", idempotency_key: str | None = None,
               **fields: Any) -> Any:
        body = {"name": name, "tax_id": tax_id, "jurisdiction": jurisdiction, **fields}
        return self._req("POST", "/v1/tenants", json=body, idempotency_key=idempotency_key)

    def get(self, tenant_id: str) -> Any:
        return self._req("GET", f"/v1/tenants/{tenant_id}")

    def list(self, *, limit: int | None = None, starting_after: str | None = None, status: str | None = None,
             tier: str | None = None, jurisdiction: str | None = None) -> Any:
        return self._req("GET", "/v1/tenants", params=_args(locals()))


class Sync(Resource):
    def status(self) -> Any:
        """Per outlet: where its invoices stand with the tax authority."""
        return self._req("GET", "/v1/sync/status")
