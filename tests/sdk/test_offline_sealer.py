"""The offline sealer without a server: sealing, the chain, caps refused locally, the credential checks,
the key file, the journal across restarts, and a key in a PKCS#11 token (SoftHSM2)."""
from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.sdk.offline_support import Cloud, request

from stalela.fiscal.core import disclosure  # noqa: E402
from stalela.fiscal.core import offline as core  # noqa: E402
from stalela.fiscal.core.invoice import draft_from_request  # noqa: E402
from stalela.fiscal.core.seal import verify_seal  # noqa: E402
from stalela.fiscal.jurisdictions import get_jurisdiction  # noqa: E402
from stalela_sdk.offline import (  # noqa: E402
    BlockExhausted, CredentialRejected, FileKey, InvoiceRefused, OfflineSealer, Pkcs11Key,
)


@pytest.fixture
def cloud() -> Cloud:
    return Cloud()


@pytest.fixture
def key(tmp_path) -> FileKey:
    return FileKey.create(tmp_path / "device.pem")


def sealer_with(tmp_path, key, cloud, **credential) -> OfflineSealer:
    sealer = OfflineSealer(tmp_path / "journal.db", key)
    sealer.use_credential(cloud.credential(key.public_jwk(), **credential), cloud.jwks)
    return sealer


def test_seals_chain_from_the_block_anchor_and_verify_with_the_device_key(tmp_path, key, cloud):
    sealer = sealer_with(tmp_path, key, cloud, first=41, last=60)
    invoices = [sealer.seal(request(i)) for i in range(5)]
    assert [inv["counter"] for inv in invoices] == [41, 42, 43, 44, 45]
    assert [inv["fiscal_number"] for inv in invoices][0].startswith("SHOP")
    prev = "ab" * 32  # the block's anchor
    device_jwk = key.public_jwk()
    for inv in invoices:
        payload = inv["seal"]["payload"]
        assert payload["prev_hash"] == prev
        prev = inv["seal"]["hash"]
        assert verify_seal(inv["seal"], device_jwk), inv["seal"]
        assert payload["key_id"] == key.thumbprint == core.jwk_thumbprint(device_jwk)
        assert payload["offline"] == {"credential": "dcr_test", "block_id": "blk_test", "device_id": "dev_test"}
        assert (payload["tenant_id"], payload["outlet_id"], payload["series_id"]) == ("ten_test", "out_test", "ser_test")
    # The very rules of the cloud: the same draft, the same totals, to the unit.
    drc = get_jurisdiction("CD")
    computed = drc.compute(draft_from_request(request(0, outlet_id="out_test"), "CDF"), None)
    assert invoices[0]["seal"]["payload"]["totals"] == computed.totals_as_json()
    assert invoices[0]["seal"]["payload"]["lines_hash"] == computed.lines_digest()
    assert sealer.status()["blocks"][0]["next"] == 46


def test_a_buyer_is_committed_with_a_fresh_salt(tmp_path, key, cloud):
    sealer = sealer_with(tmp_path, key, cloud)
    buyer = {"type": "PM", "name": "Brasserie SARL", "tax_id": "A1234567B", "email": "compta@example.cd"}
    one, two = sealer.seal(request(1, buyer=buyer)), sealer.seal(request(2, buyer=buyer))
    for inv in (one, two):
        payload = inv["seal"]["payload"]
        assert disclosure.check_commitment(payload["buyer_commitment"], inv["buyer_salt"], inv["buyer"])
        assert payload["buyer_tax_id"] == "A1234567B"  # a legal person's tax id is signed in clear
        assert inv["buyer"]["email"] == "compta@example.cd"
    assert one["buyer_salt"] != two["buyer_salt"]
    person = sealer.seal(request(3, buyer={"type": "PP", "name": "Jean K.", "tax_id": "P99"}))
    assert person["seal"]["payload"]["buyer_tax_id"] is None  # a natural person's is only committed to
    # The salt is journalled for the upload.
    assert sealer.journal.pending("blk_test", 10)[0]["buyer_salt"] == one["buyer_salt"]


@pytest.mark.parametrize("change, code", [
    ({"type": "FT"}, "offline_type_not_allowed"),
    ({"type": "FA", "original": "SHOP-1"}, "offline_type_not_allowed"),  # credit notes never offline
    ({"lines": [{"description": "Vin", "item_type": "BIE", "tax_group": "C", "quantity": "1", "unit_price": "10"}]},
     "offline_tax_group_not_allowed"),
    ({"lines": [{"description": "Camion", "item_type": "BIE", "tax_group": "B", "quantity": "1",
                 "unit_price": "2000000"}]}, "offline_cap_exceeded"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "B", "quantity": 1.5, "unit_price": "1"}]},
     "offline_float_amount"),
    ({"lines": [{"description": "x", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "1",
                 "colour": "red"}]}, "offline_request_invalid"),
    ({"outlet_id": "out_other"}, "offline_outlet_mismatch"),
    ({"lines": [{"description": "x", "item_type": "XYZ", "tax_group": "B", "quantity": "1", "unit_price": "1"}]},
     None),  # the jurisdiction's own code
])
def test_refused_locally_before_any_number_is_used(tmp_path, key, cloud, change, code):
    caps = {"max_invoice_total": "1000000.00", "invoice_types": ["FV"], "tax_groups": ["A", "B"]}
    sealer = sealer_with(tmp_path, key, cloud, caps=caps)
    with pytest.raises(InvoiceRefused) as refused:
        sealer.seal(request(0, **change))
    if code is not None:
        assert refused.value.code == code
    else:
        assert refused.value.code and refused.value.field
    assert sealer.status()["blocks"][0]["next"] == 1
    assert sealer.seal(request(0))["counter"] == 1


LINE = {"description": "Riz", "item_type": "BIE", "tax_group": "B", "quantity": "1", "unit_price": "10"}


@pytest.mark.parametrize("change, field", [
    ({"lines": [dict(LINE, quantity="1e-9999999")]}, "lines[0].quantity"),  # was sealed with a total of 0.00
    ({"lines": [dict(LINE, unit_price="1234567890123456789")]}, "lines[0].unit_price"),
    ({"lines": [dict(LINE, unit_price=Decimal("0.0000000000000000001"))]}, "lines[0].unit_price"),
    ({"lines": [dict(LINE, quantity="NaN")]}, "lines[0].quantity"),
    ({"lines": [dict(LINE, description="d" * 1001)]}, "lines[0].description"),
    ({"lines": [LINE] * 10_001}, "lines"),
    ({"reference": "r" * 101}, "reference"),
    ({"reference": ""}, "reference"),
    ({"buyer": {"type": "PM", "name": "n" * 201}}, "buyer.name"),
    ({"buyer": {"type": "PM", "name": "Brasserie", "email": "not an address"}}, "buyer.email"),
    ({"type": "F" * 17}, "type"),
])
def test_a_request_the_api_would_refuse_is_refused_before_numbering(tmp_path, key, cloud, change, field):
    sealer = sealer_with(tmp_path, key, cloud)
    with pytest.raises(InvoiceRefused) as refused:
        sealer.seal(request(0, **change))
    assert (refused.value.code, refused.value.field) == ("offline_request_invalid", field)
    assert sealer.status()["blocks"][0]["next"] == 1
    assert sealer.seal(request(0, lines=[dict(LINE, quantity="1.000000000000000000000")]))["counter"] == 1


def test_a_reference_is_sealed_once(tmp_path, key, cloud):
    sealer = sealer_with(tmp_path, key, cloud)
    sealer.seal(request(7))
    with pytest.raises(InvoiceRefused) as refused:
        sealer.seal(request(7))
    assert refused.value.code == "reference_already_used"


def test_the_block_runs_out(tmp_path, key, cloud):
    sealer = sealer_with(tmp_path, key, cloud, first=5, last=6)
    sealer.seal(request(1))
    sealer.seal(request(2))
    with pytest.raises(BlockExhausted):
        sealer.seal(request(3))


def test_credentials_checked_before_use(tmp_path, key, cloud):
    sealer = OfflineSealer(tmp_path / "j.db", key)
    other = FileKey.create(tmp_path / "other.pem")
    with pytest.raises(CredentialRejected) as wrong:
        sealer.use_credential(cloud.credential(other.public_jwk()), cloud.jwks)
    assert wrong.value.code == "credential_wrong_key"
    with pytest.raises(CredentialRejected) as long:
        sealer.use_credential(cloud.credential(key.public_jwk(), lifetime=8 * 86400), cloud.jwks)
    assert long.value.code == "credential_lifetime"
    with pytest.raises(CredentialRejected) as none:
        sealer.use_credential(cloud.credential(key.public_jwk(), header={"alg": "none", "typ": "dc+jwt"}), cloud.jwks)
    assert none.value.code == "credential_algorithm"
    with pytest.raises(CredentialRejected) as forged:
        sealer.use_credential(Cloud().credential(key.public_jwk()), cloud.jwks)  # signed by another key, same kid
    assert forged.value.code == "credential_signature"
    with pytest.raises(CredentialRejected) as expired:
        sealer.use_credential(cloud.credential(key.public_jwk(), nbf=1_700_000_000, lifetime=3600), cloud.jwks)
    assert expired.value.code == "credential_expired"


def test_no_seal_after_the_credential_expires(tmp_path, key, cloud):
    now = [datetime.now(timezone.utc)]
    sealer = OfflineSealer(tmp_path / "j.db", key, clock=lambda: now[0])
    sealer.use_credential(cloud.credential(key.public_jwk(), lifetime=3600), cloud.jwks)
    sealer.seal(request(1))
    now[0] += timedelta(hours=2)
    with pytest.raises(CredentialRejected) as expired:
        sealer.seal(request(2))
    assert expired.value.code == "credential_expired"
    assert sealer.status()["blocks"][0]["next"] == 2


def test_the_journal_carries_on_after_a_restart(tmp_path, key, cloud):
    sealer = sealer_with(tmp_path, key, cloud)
    last = [sealer.seal(request(i)) for i in range(3)][-1]
    sealer.close()
    again = OfflineSealer(tmp_path / "journal.db", FileKey.load(tmp_path / "device.pem"))
    nxt = again.seal(request(3))
    assert nxt["counter"] == 4 and nxt["seal"]["payload"]["prev_hash"] == last["seal"]["hash"]
    assert again.invoice(last["id"])["upload"]["status"] == "sealed"
    assert again.status()["invoices"] == {"sealed": 4}


def test_the_key_file_is_private_and_never_shown(tmp_path):
    path = tmp_path / "k.pem"
    key = FileKey.create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        FileKey.create(path)
    assert "PRIVATE" not in repr(key) and key.thumbprint in repr(key)
    assert FileKey.load(path).thumbprint == key.thumbprint
    assert "d" not in key.public_jwk()


@pytest.mark.skipif(os.name != "posix", reason="a directory is fsynced on POSIX only")
def test_the_key_file_and_its_directory_entry_are_synced(tmp_path, monkeypatch):
    """The file's bytes and its name: without the directory's fsync, a power cut can lose the new entry and
    with it the device's identity."""
    synced, fsync = [], os.fsync

    def spy(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, stat.S_ISDIR(os.fstat(fd).st_mode)))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    FileKey.create(tmp_path / "k.pem")
    assert synced == [(os.stat(tmp_path / "k.pem").st_ino, False), (os.stat(tmp_path).st_ino, True)]


def test_a_key_in_a_pkcs11_token(tmp_path, cloud, softhsm_token):
    key = Pkcs11Key(softhsm_token.library_path, softhsm_token.token_label, softhsm_token.pin, f"device-{os.getpid()}")
    try:
        again = Pkcs11Key(softhsm_token.library_path, softhsm_token.token_label, softhsm_token.pin, key.label,
                          create=False)
        assert again.thumbprint == key.thumbprint  # found again by label, the same key
        sealer = sealer_with(tmp_path, key, cloud)
        invoices = [sealer.seal(request(i)) for i in range(3)]
        for inv in invoices:
            assert verify_seal(inv["seal"], key.public_jwk())
        assert invoices[1]["seal"]["payload"]["prev_hash"] == invoices[0]["seal"]["hash"]
    finally:
        key.close()


def test_total_cap_is_decimal_exact(tmp_path, key, cloud):
    caps = {"max_invoice_total": "100.00", "invoice_types": ["FV"], "tax_groups": ["A"]}
    sealer = sealer_with(tmp_path, key, cloud, caps=caps)
    line = {"description": "x", "item_type": "SER", "tax_group": "A", "quantity": "1", "unit_price": "100.00"}
    assert Decimal(sealer.seal(request(1, lines=[line]))["totals"]["total"]) == Decimal("100.00")
    with pytest.raises(InvoiceRefused):
        sealer.seal(request(2, lines=[{**line, "unit_price": "100.01"}]))


def test_the_cloud_rebuilds_exactly_the_payload_the_device_signed(tmp_path, key, cloud):
    """What the merge does with a returned invoice: the request through the API's own schema and
    ``sealing.to_draft``, the jurisdiction's engine, the credential's numbering: the same payload."""
    from stalela.fiscal.invoices.schemas import InvoiceCreate
    from stalela.fiscal.invoices.sealing import SEAL_VERSION, to_draft

    sealer = sealer_with(tmp_path, key, cloud)
    _, claims = sealer.credential()
    drc = get_jurisdiction("CD")
    buyer = {"type": "PM", "name": "Brasserie SARL", "tax_id": "A1234567B", "phone": "+243 81 000"}
    for inv in (sealer.seal(request(1)), sealer.seal(request(2, buyer=buyer, price_mode="ttc"))):
        sent = sealer.journal.pending("blk_test", 10)[inv["counter"] - 1]
        body = InvoiceCreate.model_validate(sent["request"])
        computed = drc.compute(to_draft(body, drc), None)
        document_buyer = core.buyer_document(computed.buyer_as_json(), body.buyer.model_dump() if body.buyer else None)
        signed = inv["seal"]["payload"]
        rebuilt = core.invoice_payload(
            version=SEAL_VERSION, jurisdiction="CD", tenant_id=claims["tenant_id"], seller_tax_id=claims["seller_tax_id"],
            outlet_id=claims["outlet"], series_id=claims["series"], counter=signed["counter"],
            fiscal_number=drc.fiscal_number(claims["outlet_code"], claims["pos_number"], body.type, signed["counter"],
                                            claims["series_generation"]),
            invoice_id=signed["invoice_id"], type=body.type, price_mode=computed.price_mode,
            issued_at=signed["issued_at"], currency=computed.currency, totals=computed.totals_as_json(),
            lines_hash=computed.lines_digest(), line_count=len(computed.lines),
            buyer_tax_id=core.clear_tax_id(document_buyer),
            buyer_commitment=disclosure.buyer_commitment(sent["buyer_salt"], document_buyer) if document_buyer else None,
            nature=body.nature, original=body.original, exchange=computed.exchange_as_json(), key_id=key.thumbprint,
            prev_hash=signed["prev_hash"], series_first=claims["series_first"],
            offline=core.offline_marker(claims["jti"], claims["block"]["id"], claims["sub"]))
        assert rebuilt == signed
