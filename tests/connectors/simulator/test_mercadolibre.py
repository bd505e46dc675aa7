"""The Mercado Libre simulator over real HTTP: rotating refresh tokens, orders, fiscal documents, notifications."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.connectors.simulator.support import SECRET, wait_until

PDF = b"%PDF-1.4\n% a tiny test document\n%%EOF\n"
INVALID_TOKEN = {"message": "invalid access token", "error": "unauthorized", "status": 401, "cause": []}


def _api(shop, token: str | None = None):
    return shop.api({"Authorization": f"Bearer {token or shop.credentials['access_token']}"})


def _refresh(client, refresh_token: str):
    return client.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": "4455667788990011",
                                             "client_secret": SECRET, "refresh_token": refresh_token})


def test_each_refresh_returns_a_new_refresh_token_and_kills_the_old_one(make_shop):
    shop = make_shop("mercadolibre")
    creds = shop.credentials
    with shop.api() as client:
        first = _refresh(client, creds["refresh_token"])
        assert first.status_code == 200, first.text
        new = first.json()
        assert new["refresh_token"] != creds["refresh_token"] and new["token_type"] == "Bearer"
        assert (new["user_id"], new["expires_in"]) == (creds["user_id"], 21600)
        reused = _refresh(client, creds["refresh_token"])
        assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
        assert _refresh(client, new["refresh_token"]).status_code == 200
        racing = shop.control.post("/_sim/tokens").json()["refresh_token"]
        with ThreadPoolExecutor(4) as pool:
            codes = sorted(pool.map(lambda _: _refresh(client, racing).status_code, range(4)))
        assert codes == [200, 400, 400, 400]  # concurrent refreshes with one token: one wins
    with _api(shop, new["access_token"]) as api:
        assert api.get("/users/me").json()["id"] == creds["user_id"]


def test_access_tokens_expire_after_their_ttl(make_shop):
    shop = make_shop("mercadolibre")
    order = shop.order()
    with _api(shop) as api:
        assert api.get(f"/orders/{order['id']}").status_code == 200
        shop.faults(token_ttl_s=60)  # shortens every token's life, old ones too
        shop.control.post("/_sim/clock", json={"advance_s": 61})
        r = api.get(f"/orders/{order['id']}")
        assert (r.status_code, r.json()) == (401, INVALID_TOKEN)
    with shop.api() as client:
        fresh = _refresh(client, shop.credentials["refresh_token"]).json()
    assert fresh["expires_in"] == 60
    with _api(shop, fresh["access_token"]) as api:
        assert api.get(f"/orders/{order['id']}").status_code == 200
    with _api(shop, "APP_USR-nonsense") as api:
        assert api.get(f"/orders/{order['id']}").status_code == 401


def test_orders_amounts_are_json_numbers_and_billing_info_has_two_versions(make_shop):
    shop = make_shop("mercadolibre")
    order = shop.order(order_items=[{"unit_price": "1234.50", "quantity": 2}],
                       billing_info={"identification": {"type": "CUIT", "number": "20123456786"}})
    with _api(shop) as api:
        r = api.get(f"/orders/{order['id']}")
        assert '"total_amount":2469' in r.text.replace(" ", "")
        assert r.json()["order_items"][0]["unit_price"] == 1234.5
        v2 = api.get(f"/orders/{order['id']}/billing_info", headers={"x-version": "2"}).json()
        assert v2["buyer"]["billing_info"]["identification"] == {"type": "CUIT", "number": "20123456786"}
        v1 = api.get(f"/orders/{order['id']}/billing_info").json()
        assert v1["billing_info"]["doc_number"] == "20123456786"
        other = shop.control.post("/_sim/tokens", json={"user_id": 555}).json()["access_token"]
        assert api.get(f"/orders/{order['id']}", headers={"Authorization": f"Bearer {other}"}).status_code == 403
        assert api.get("/orders/1").status_code == 404


def test_search_pages_by_offset_sorted_by_creation_date(make_shop):
    shop = make_shop("mercadolibre")
    ids = [shop.order()["id"] for _ in range(5)]
    shop.control.post("/_sim/clock", json={"advance_s": 5})
    shop.pay(ids[0])  # the most recently updated, still first by creation date
    seller = shop.credentials["user_id"]
    with _api(shop) as api:
        base = f"/orders/search?seller={seller}&sort=date_asc&limit=2"
        pages = [api.get(f"{base}&offset={n}").json() for n in (0, 2, 4)]
        assert [o["id"] for p in pages for o in p["results"]] == ids
        assert pages[0]["paging"] == {"total": 5, "offset": 0, "limit": 2}
        since = pages[0]["results"][0]["last_updated"]
        recent = api.get(f"/orders/search?seller={seller}&order.date_last_updated.from={since}").json()
        assert [o["id"] for o in recent["results"]] == [ids[0]]
        assert api.get(f"/orders/search?seller={seller}&limit=52").status_code == 400
        assert api.get("/orders/search?seller=1").status_code == 403


def _upload(api, pack_id: int, files):
    return api.post(f"/packs/{pack_id}/fiscal_documents", files=files)


def test_one_fiscal_document_per_pack_pdf_at_most_1_mb(make_shop):
    shop = make_shop("mercadolibre")
    single = shop.order()
    packed = [shop.order(pack_id=777)["id"] for _ in range(2)]
    with _api(shop) as api:
        assert api.post(f"/packs/{single['id']}/fiscal_documents", json={"x": 1}).status_code == 400
        assert _upload(api, single["id"], {"other": ("f.pdf", PDF, "application/pdf")}).status_code == 400
        big = PDF + b"0" * (1024 * 1024)
        assert _upload(api, single["id"], {"fiscal_document": ("f.pdf", big, "application/pdf")}).status_code == 400
        assert _upload(api, single["id"], {"fiscal_document": ("f.txt", b"hi", "text/plain")}).status_code == 400
        ok = _upload(api, single["id"], {"fiscal_document": ("f.pdf", PDF, "application/pdf")})
        assert ok.status_code == 201 and len(ok.json()["ids"]) == 1
        again = _upload(api, single["id"], {"fiscal_document": ("f.pdf", PDF, "application/pdf")})
        assert (again.status_code, again.json()["error"]) == (409, "conflict")
        assert _upload(api, 123, {"fiscal_document": ("f.pdf", PDF, "application/pdf")}).status_code == 404
        with ThreadPoolExecutor(4) as pool:
            codes = sorted(pool.map(lambda _: _upload(api, 777, {"fiscal_document": (
                "f.pdf", PDF, "application/pdf")}).status_code, range(4)))
        assert codes == [201, 409, 409, 409]
        listed = api.get("/packs/777/fiscal_documents").json()
        assert api.get(f"/packs/777/fiscal_documents/{listed['ids'][0]}").content == PDF
    assert shop.inspect(packed[1])["fiscal_documents"][0]["size"] == len(PDF)
    assert shop.inspect(single["id"])["fiscal_documents"][0]["id"] == ok.json()["ids"][0]


def test_notifications_are_unsigned_pointers_retried_until_a_200_within_500_ms(make_shop, receiver):
    shop = make_shop("mercadolibre", retry_delays_s=(0.05, 0.05, 0.05))
    receiver.answer("/ml", 204, (200, {}, b"ok", 0.8), default=200)  # a 204 and a late 200 fail
    shop.subscribe(receiver.url("/ml"))
    order = shop.order()
    wait_until(lambda: any(e["outcome"] == "delivered" for e in shop.deliveries()))
    got = receiver.at("/ml")
    bodies = [r.json() for r in got]
    assert {b["_id"] for b in bodies} == {bodies[0]["_id"]}
    assert [b["attempts"] for b in bodies] == list(range(1, len(bodies) + 1))
    assert bodies[0] | {"attempts": 0, "sent": 0} == bodies[-1] | {"attempts": 0, "sent": 0}
    assert bodies[0]["resource"] == f"/orders/{order['id']}" and bodies[0]["topic"] == "orders_v2"
    assert bodies[0]["user_id"] == shop.credentials["user_id"] and bodies[0]["application_id"]
    assert not any(k.startswith("x-") and "signature" in k or "hmac" in k for k in got[0].headers)
    shop.settle()
    log = [(e["status_code"], e["error"], e["outcome"]) for e in shop.deliveries()]
    # (A loaded machine may make the prompt 200 late too: then one more attempt follows.)
    assert log[:2] == [(204, None, "failed"), (None, "timeout", "failed")]
    assert log[-1] == (200, None, "delivered") and len(log) in (3, 4)
