"""``stalela verify`` on ledgers with offline sealing: number blocks in their series, delegated credentials
checked with the tenant's keys, offline invoices with their credential's device key, placed in their block
with ``BlockChain`` (refusals, voids, un-voids), every failure named. Synthetic ledgers built with the core
functions and real P-256 keys; tampered copies of them."""
from __future__ import annotations

import copy
import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from stalela.fiscal.core import merkle
from stalela.fiscal.core import offline as core
from stalela.fiscal.core.seal import canonical_bytes, public_jwk_from_public_key
from stalela.fiscal.ledger.verify import LedgerVerifier
from stalela.kit import canonical
from stalela.kit.clock import rfc3339
from tests.offline.void_fixtures import Device

TENANT, OUTLET, SERIES = "ten_off", "out_off", "ser_off"
ZERO = "0" * 64
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


class Ledger:
    """A tenant's log built record by record, the way the cloud and a device would seal it."""

    def __init__(self) -> None:
        self.cloud = Device.new()  # the tenant's signing key (a P-256 key like any other)
        self.jwk = {**public_jwk_from_public_key(self.cloud.key.public_key(), "tk_1"), "kid": "tk_1"}
        self.cloud.jwk = self.jwk
        self.records: list[dict[str, Any]] = []
        self.credentials: list[dict[str, Any]] = []
        self.series_head, self.counter, self.n = ZERO, 0, 0

    # --- cloud-sealed -------------------------------------------------------------------------

    def _event(self, payload: dict[str, Any]) -> dict[str, Any]:
        seal = self.cloud.seal(payload)
        self.n += 1
        record = {"id": f"lev_{self.n}", "object": "ledger_event", "kind": payload["kind"], "outlet_id": OUTLET,
                  "block_id": payload["block_id"], "seal": seal}
        self.records.append(record)
        return record

    def _record(self, kind: str, block_id: str, prev_hash: str, **fields: Any) -> dict[str, Any]:
        return self._event(core.record_payload(kind, tenant_id=TENANT, outlet_id=OUTLET, series_id=SERIES,
                                               block_id=block_id, key_id="tk_1", prev_hash=prev_hash,
                                               at=rfc3339(T0), **fields))

    def online(self, **over: Any) -> dict[str, Any]:
        self.counter += 1
        record = self._invoice(self.counter, self.series_head, key=self.cloud, **over)
        self.series_head = record["seal"]["hash"]
        return record

    def block(self, size: int, device: Device, *, lifetime: timedelta = timedelta(hours=72),
              caps: dict[str, Any] | None = None) -> dict[str, Any]:
        first, last = self.counter + 1, self.counter + size
        block_id, jti = f"blk_{first}", f"dcr_{first}"
        event = self._record(core.BLOCK, block_id, self.series_head, first=first, last=last, device_id="dev_1",
                             credential=jti, device_key=device.jwk["kid"], expires_at=rfc3339(T0 + lifetime),
                             fiscal_numbers=[f"KIN1-{first:08d}", f"KIN1-{last:08d}"])
        anchor = event["seal"]["hash"]
        self.counter, self.series_head = last, anchor
        claims = {"iss": "https://stalela.test", "sub": "dev_1", "jti": jti, "iat": int(T0.timestamp()),
                  "nbf": int(T0.timestamp()), "exp": int((T0 + lifetime).timestamp()), "vct": core.CREDENTIAL_VCT,
                  "tenant_id": TENANT, "cnf": {"jwk": device.jwk}, "outlet": OUTLET, "series": SERIES,
                  "series_first": 1, "block": {"id": block_id, "first": first, "last": last, "anchor": anchor},
                  "caps": caps or {"max_invoice_total": "1000.00", "invoice_types": ["FV"], "tax_groups": ["B"]}}
        signing_input = core.credential_signing_input({"alg": "ES256", "typ": core.CREDENTIAL_TYP, "kid": "tk_1"},
                                                      claims)
        self.credentials.append({"jti": jti, "token": core.compact_jws(signing_input, self.cloud.sign(signing_input)),
                                 "device_id": "dev_1", "block_id": block_id})
        return {"id": block_id, "jti": jti, "first": first, "last": last, "anchor": anchor, "head": anchor,
                "device": device, "next": first}

    def void(self, block: dict[str, Any], first: int, last: int, reason: str = "expired") -> dict[str, Any]:
        record = self._record(core.VOID, block["id"], block["head"], first=first, last=last,
                              fiscal_numbers=[f"KIN1-{first:08d}", f"KIN1-{last:08d}"], reason=reason)
        block["void"], block["void_head"] = record["seal"]["hash"], block["head"]
        return record

    def unvoid(self, block: dict[str, Any], first: int, last: int) -> dict[str, Any]:
        return self._record(core.UNVOID, block["id"], block["void_head"], void=block["void"], first=first, last=last)

    def refuse(self, block: dict[str, Any], counter: int, device_hash: str) -> dict[str, Any]:
        record = self._record(core.REFUSAL, block["id"], block["head"], counter=counter,
                              fiscal_number=f"KIN1-{counter:08d}", device_hash=device_hash, code="caps_exceeded")
        block["head"] = device_hash
        return record

    # --- device-sealed ------------------------------------------------------------------------

    def offline(self, block: dict[str, Any], counter: int | None = None, *, prev_hash: str | None = None,
                at: datetime | None = None, device: Device | None = None) -> dict[str, Any]:
        counter = block["next"] if counter is None else counter
        record = self._invoice(counter, block["head"] if prev_hash is None else prev_hash,
                               key=device or block["device"], at=at or T0 + timedelta(hours=1),
                               offline=core.offline_marker(block["jti"], block["id"], "dev_1"))
        block["head"], block["next"] = record["seal"]["hash"], counter + 1
        return record

    def _invoice(self, counter: int, prev_hash: str, *, key: Device, at: datetime = T0,
                 offline: dict[str, str] | None = None, total: str = "116.00") -> dict[str, Any]:
        lines = [{"description": "Pain", "quantity": "1", "unit_price": total, "tax_group": "B"}]
        totals = {"groups": [{"group": "B", "rate": "16", "amount": total, "base": "100.00", "vat": "16.00"}],
                  "total": total, "vat_settled_by_credit": "0.00", "payable": total}
        payload = core.invoice_payload(
            version=2, jurisdiction="CD", tenant_id=TENANT, seller_tax_id="A0001", outlet_id=OUTLET, series_id=SERIES,
            counter=counter, fiscal_number=f"KIN1-{counter:08d}", invoice_id=f"inv_{counter}", type="FV",
            price_mode="TTC", issued_at=rfc3339(at), currency="CDF", totals=totals,
            lines_hash=hashlib.sha256(canonical.dumps(lines)).hexdigest(), line_count=1, buyer_tax_id=None,
            buyer_commitment=None, nature=None, original=None, exchange=None, key_id=key.jwk["kid"],
            prev_hash=prev_hash, offline=offline)
        seal = key.seal(payload)
        record = {"id": payload["invoice_id"], **{k: payload[k] for k in (
            "fiscal_number", "counter", "type", "price_mode", "issued_at", "currency", "outlet_id", "tenant_id",
            "nature", "original", "totals", "exchange")}, "lines": lines, "seal": seal}
        self.records.append(record)
        return record

    # --- verification -------------------------------------------------------------------------

    def checkpoint(self, records: list[dict[str, Any]], at: datetime = T0) -> dict[str, Any]:
        tree = merkle.CompactRange()
        for r in records:
            tree.append(merkle.seal_leaf_hash(r["seal"]["hash"]))
        payload = {"tenant_id": TENANT, "tree_size": tree.size, "root_hash": tree.root().hex(),
                   "timestamp": rfc3339(at)}
        return {"id": "chk_1", "tree_size": tree.size, "root_hash": payload["root_hash"], "seal": self.cloud.seal(payload)}

    def verify(self, records: list[dict[str, Any]] | None = None, credentials: list[dict[str, Any]] | None = None,
               checkpoint: bool = True, checkpoint_at: datetime = T0, complete: bool = True):
        records = self.records if records is None else records
        verifier = LedgerVerifier(TENANT, [self.jwk], complete=complete)
        verifier.credentials(self.credentials if credentials is None else credentials)
        if checkpoint:
            verifier.checkpoints([self.checkpoint(self.records, checkpoint_at)])
        for index, record in enumerate(records):
            record = {**record, "leaf_index": record.get("leaf_index", index)}
            (verifier.event if record.get("object") == "ledger_event" else verifier.invoice)(record)
        return verifier.finish()


def kinds(report) -> list[str]:
    return [f.what for f in report.failures]


@pytest.fixture
def ledger() -> tuple[Ledger, dict[str, Any]]:
    return sample()


def sample() -> tuple[Ledger, dict[str, Any]]:
    """Online 1-2, a block 3..12 (offline 3..7, a refusal at 8, voided 9..12), online 13-14."""
    led = Ledger()
    led.online()
    led.online()
    block = led.block(10, Device.new())
    for _ in range(5):
        led.offline(block)
    head = block["head"]
    refused = led.offline(block)  # the device sealed 8, the cloud refused it: recorded, not merged
    led.records.remove(refused)
    block["head"] = head
    led.refuse(block, 8, refused["seal"]["hash"])
    led.void(block, 9, 12)
    led.online()
    led.online()
    return led, block


def test_a_clean_ledger_with_offline_records_verifies(ledger):
    led, _ = ledger
    report = led.verify()
    assert report.valid, [f.describe() for f in report.failures]
    assert (report.invoices, report.offline_invoices, report.events, report.credentials, report.blocks,
            report.voids, report.series, report.checkpoints_matched) == (9, 5, 3, 1, 1, 1, 1, 1)


def test_late_invoices_after_an_unvoid_verify_and_without_it_are_named(ledger):
    led, block = ledger
    bare, bare_block = copy.deepcopy((led, block))
    late = bare.offline(bare_block, 9, prev_hash=bare_block["head"])
    report = bare.verify()
    assert kinds(report)[0] == "offline_number_voided"
    assert report.failures[0].invoice_id == late["id"]

    led.unvoid(block, 9, 10)
    led.offline(block, 9, prev_hash=block["head"])
    led.offline(block, 10)
    assert led.verify().valid, [f.describe() for f in led.verify().failures]
    # An un-void whose numbers never come back is named at the end (it chains to the last late invoice).
    block["void_head"] = block["head"]
    led.unvoid(block, 11, 11)
    assert kinds(led.verify()) == ["offline_unvoid_unfilled"]


def test_a_byte_changed_in_an_offline_invoice(ledger):
    led, _ = ledger
    records = copy.deepcopy(led.records)
    target = next(r for r in records if "offline" in r.get("seal", {}).get("payload", {}))
    target["seal"]["payload"]["total"] = "1116.00"
    target["total"] = "1116.00"
    report = led.verify(records)
    assert kinds(report)[0] == "offline_seal_invalid" and report.failures[0].invoice_id == target["id"]


def test_two_offline_numbers_swapped(ledger):
    led, _ = ledger
    records = copy.deepcopy(led.records)
    for index, r in enumerate(records):
        r["leaf_index"] = index
    i = next(n for n, r in enumerate(records) if r.get("counter") == 4)
    records[i], records[i + 1] = records[i + 1], records[i]
    report = led.verify(records, checkpoint=False)
    assert "offline_number_gap" in kinds(report) and "leaf_out_of_order" in kinds(report)
    gap = next(f for f in report.failures if f.what == "offline_number_gap")
    assert gap.counter == 5


def test_one_offline_invoice_dropped(ledger):
    led, _ = ledger
    records = [r for r in led.records if r.get("counter") != 5]
    report = led.verify(records, checkpoint=False)
    assert kinds(report)[0] == "offline_number_gap" and report.failures[0].counter == 6


def test_a_credential_valid_for_eight_days_is_refused(ledger):
    led = Ledger()
    led.online()
    block = led.block(3, Device.new(), lifetime=timedelta(days=8))
    led.offline(block)
    report = led.verify()
    assert kinds(report)[:2] == ["offline_credential_lifetime", "offline_credential_missing"]
    assert report.failures[0].credential == block["jti"]


def test_credential_problems(ledger):
    led, block = ledger
    # Signed by a key the tenant never published.
    forged = copy.deepcopy(led.credentials)
    head, claims, _ = forged[0]["token"].split(".")
    stranger = Device.new()
    forged[0]["token"] = core.compact_jws(f"{head}.{claims}".encode(), stranger.sign(f"{head}.{claims}".encode()))
    assert kinds(led.verify(credentials=forged))[0] == "offline_credential_invalid"
    # Missing from the export: the block says which one, and every invoice under it is named.
    report = led.verify(credentials=[])
    assert kinds(report).count("offline_credential_missing") == 6  # the block + its five invoices
    # An archive is checked as of the credential's own validity: expired long ago is no fault.
    assert led.verify().valid


def test_wrong_device_key_and_time_outside_the_credential():
    def started() -> tuple[Ledger, dict[str, Any]]:
        led = Ledger()
        block = led.block(5, Device.new())
        led.offline(block)
        return led, block

    led, block = started()
    led.offline(block, device=Device.new())  # signed by a key the credential does not bind
    report = led.verify()
    assert kinds(report) == ["offline_seal_invalid"] and report.failures[0].counter == 2
    led, block = started()
    led.offline(block, at=T0 + timedelta(days=4))  # after the credential's exp (72 h)
    report = led.verify()
    assert kinds(report) == ["offline_time_outside_credential"] and report.failures[0].counter == 2


def test_voids_and_refusals_must_fit_where_the_block_stands():
    led = Ledger()
    block = led.block(5, Device.new())
    led.offline(block)
    led.offline(block)
    led.void(block, 2, 5)  # 2 was used: a void may only take the unused tail
    report = led.verify()
    assert kinds(report) == ["offline_void_misplaced"]
    assert report.failures[0].block_id == block["id"]


def test_an_online_invoice_inside_a_block_is_a_duplicate_counter():
    led = Ledger()
    led.online()
    led.block(3, Device.new())
    led.counter -= 1  # an online seal that did not see the block reuses its last number
    led.online()
    assert "counter_duplicate" in kinds(led.verify())


def test_a_tampered_ledger_event():
    led = Ledger()
    block = led.block(3, Device.new())
    led.void(block, 1, 3)
    records = copy.deepcopy(led.records)
    records[1]["seal"]["payload"]["last"] = 2
    report = led.verify(records)
    assert kinds(report)[0] == "event_seal_invalid" and report.failures[0].event_id == records[1]["id"]


def test_a_returned_void_is_final_and_whole():
    """The device signed that it would not use its tail: an un-void of it, or an invoice in it, is named;
    and a return must take the whole tail (a partial one would let two records share a prev_hash)."""
    def returned() -> tuple[Ledger, dict[str, Any]]:
        led = Ledger()
        block = led.block(5, Device.new())
        led.offline(block)
        led.void(block, 2, 5, reason="returned")
        return led, block

    led, block = returned()
    assert led.verify().valid, [f.describe() for f in led.verify().failures]
    led.unvoid(block, 2, 2)
    led.offline(block, 2, prev_hash=block["void_head"])
    assert kinds(led.verify())[:2] == ["offline_number_returned", "offline_number_returned"]

    led, block = returned()
    led.offline(block, 3, prev_hash=block["head"])  # no un-void at all: still the device's own word
    assert kinds(led.verify()) == ["offline_number_returned"]

    led = Ledger()
    block = led.block(5, Device.new())
    led.offline(block)
    led.void(block, 2, 3, reason="returned")
    assert kinds(led.verify()) == ["offline_void_misplaced"]


def test_offline_invoices_beyond_their_credentials_caps():
    led = Ledger()
    block = led.block(3, Device.new(), caps={"max_invoice_total": "100.00", "invoice_types": ["FT"],
                                            "tax_groups": ["A"]})
    led.offline(block)  # FV, group B, total 116.00: all three caps broken
    report = led.verify()
    assert kinds(report) == ["offline_type_not_allowed", "offline_tax_group_not_allowed", "offline_cap_exceeded"]
    assert {f.counter for f in report.failures} == {1}
    # A credential without caps allows nothing (as at the merge).
    led = Ledger()
    block = led.block(3, Device.new(), caps={"other": 1})
    led.offline(block)
    assert kinds(led.verify()) == ["offline_type_not_allowed", "offline_tax_group_not_allowed",
                                   "offline_cap_exceeded"]


def test_offline_invoices_after_their_credentials_revocation():
    led = Ledger()
    block = led.block(3, Device.new())
    led.offline(block, at=T0 + timedelta(minutes=10))
    led.offline(block, at=T0 + timedelta(minutes=30))
    led.offline(block, at=T0 + timedelta(hours=1))
    credentials = [{**led.credentials[0], "revoked_at": rfc3339(T0 + timedelta(minutes=30))}]
    report = led.verify(credentials=credentials)
    assert kinds(report) == ["offline_after_revocation"] * 2
    assert [f.counter for f in report.failures] == [2, 3] and "unsigned" in report.failures[0].detail
    assert led.verify(credentials=[{**led.credentials[0], "revoked_at": None}]).valid


def test_numbers_neither_used_nor_voided_after_the_grace():
    def started() -> tuple[Ledger, dict[str, Any]]:
        led = Ledger()
        block = led.block(5, Device.new())  # expires at T0 + 72 h
        led.offline(block)
        return led, block

    led, block = started()
    # Expiry + grace + a day's slack for a late void scheduler (verify_offline.VOID_SLACK).
    due = T0 + timedelta(hours=72 + 24 + 24)
    assert led.verify(checkpoint_at=due - timedelta(minutes=1)).valid
    report = led.verify(checkpoint_at=due + timedelta(minutes=1))
    assert kinds(report) == ["offline_block_unvoided"] and report.failures[0].block_id == block["id"]
    assert "2..5" in report.failures[0].detail
    # Voided, or used up: nothing to say. A partial export has no end to judge from.
    led.void(block, 2, 5)
    assert led.verify(checkpoint_at=due + timedelta(days=30)).valid
    led, block = started()
    for _ in range(4):
        led.offline(block)
    assert led.verify(checkpoint_at=due + timedelta(days=30)).valid
    led, block = started()
    assert led.verify(checkpoint_at=due + timedelta(days=30), complete=False).valid


def test_a_partial_export_does_not_place_blocks_allocated_before_it():
    """Records of a block whose number_block record is before the range: checked (seals, credential, caps,
    series) but not placed; a block no credential states is still unknown."""
    led, block = sample()
    records = copy.deepcopy(led.records)
    for index, r in enumerate(records):
        r["leaf_index"] = index
    start = next(i for i, r in enumerate(records) if r.get("counter") == 5)
    partial = records[start:]
    assert kinds(led.verify(partial, complete=False, checkpoint=False)) == []
    whole = led.verify(partial, checkpoint=False)  # the same lines claimed to be a whole ledger
    assert "offline_block_unknown" in kinds(whole)
    # Still checked: a changed byte, and a record naming a block no credential states.
    partial[0]["seal"]["payload"]["total"] = "1.00"
    assert kinds(led.verify(partial, complete=False, checkpoint=False)) == ["offline_seal_invalid"]
    stray = copy.deepcopy(records[start:])
    event = next(r for r in stray if r.get("object") == "ledger_event")
    event["seal"]["payload"]["block_id"] = event["block_id"] = "blk_nowhere"
    assert "offline_block_unknown" in kinds(led.verify(stray, complete=False, checkpoint=False))
