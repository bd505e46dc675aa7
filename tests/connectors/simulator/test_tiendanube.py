"""The Tienda Nube simulator over real HTTP: its odd auth header, page numbers, owner_note, hex-signed pointers."""
from __future__ import annotations

from tests.connectors.simulator.support import SECRET, hmac_base64, hmac_hex, wait_until

UA = {"User-Agent": "Stalela tests (dev@stalela.example)"}


def _api(shop, **headers):
    return shop.api({**UA, "Authentication": f"bearer {shop.credentials['access_token']}", **headers})


def _orders(shop) -> str:
    return f"/2025-03/{shop.credentials['store_id']}/orders"


def test_webhooks_are_pointers_signed_hex_over_the_raw_body(make_shop, receiver):
    shop = make_shop("tiendanube")
    shop.subscribe(receiver.url("/tn"), topics=["order/created", "order/paid"])
    order = shop.order(products=[{"name": "Yerba", "price": "1500.00", "quantity": 2}],
                       discount="300.00", shipping_cost_customer="450.50")
    assert (order["subtotal"], order["total"]) == ("3000.00", "3150.50")
    shop.pay(order["id"])
    got = wait_until(lambda: len(receiver.at("/tn")) == 2 and receiver.at("/tn"))
    assert sorted((r.json() for r in got), key=lambda b: b["event"]) == [  # in any order
        {"store_id": order["store_id"], "event": e, "id": order["id"]} for e in ("order/created", "order/paid")]
    for r in got:
        assert r.headers["x-linkedstore-hmac-sha256"] == hmac_hex(SECRET, r.body)
        assert r.headers["x-linkedstore-hmac-sha256"] != hmac_base64(SECRET, r.body)


def test_the_api_wants_authentication_bearer_and_a_user_agent(make_shop):
    shop = make_shop("tiendanube")
    order = shop.order()
    path = f"{_orders(shop)}/{order['id']}"
    with _api(shop) as api:
        r = api.get(path)
        assert r.status_code == 200 and r.json()["number"] == 100
        assert r.json()["created_at"].endswith("+0000")
        no_agent = api.get(path, headers={"User-Agent": ""})
        assert no_agent.status_code == 400 and "User-Agent" in no_agent.json()["description"]
        assert api.get(f"/2025-03/999/orders/{order['id']}").status_code == 401  # another store
        assert api.get(f"{_orders(shop)}/1").status_code == 404
    with shop.api({**UA, "Authorization": f"bearer {shop.credentials['access_token']}"}) as wrong:
        r = wrong.get(path)
        assert (r.status_code, r.json()["code"]) == (401, 401)


def test_pages_end_with_a_404_naming_the_last_page(make_shop):
    shop = make_shop("tiendanube")
    ids = [shop.order()["id"] for _ in range(5)]
    with _api(shop) as api:
        seen, page = [], 1
        while True:
            r = api.get(_orders(shop), params={"page": page, "per_page": 2,
                                               "updated_at_min": "2000-01-01T00:00:00+0000"})
            if r.status_code == 404:
                assert r.json() == {"code": 404, "message": "Not Found", "description": "Last page is 3"}
                break
            assert r.headers["x-total-count"] == "5"
            seen += [o["id"] for o in r.json()]
            page += 1
        assert seen == ids and page == 4
        empty = api.get(_orders(shop), params={"updated_at_min": "2100-01-01T00:00:00Z"})
        assert (empty.status_code, empty.json()["description"]) == (404, "Last page is 0")


def test_owner_note_write_back_is_an_update_only_when_it_changes(make_shop, receiver):
    shop = make_shop("tiendanube")
    order = shop.order()
    shop.subscribe(receiver.url("/tn"), topics=["order/updated"])
    shop.control.post("/_sim/clock", json={"advance_s": 2})
    with _api(shop) as api:
        path = f"{_orders(shop)}/{order['id']}"
        first = api.put(path, json={"owner_note": "Factura B 0001-00000042"})
        assert first.status_code == 200 and first.json()["owner_note"] == "Factura B 0001-00000042"
        assert first.json()["updated_at"] != order["updated_at"]
        wait_until(lambda: len(receiver.at("/tn")) == 1)
        shop.control.post("/_sim/clock", json={"advance_s": 2})
        again = api.put(path, json={"owner_note": "Factura B 0001-00000042"})
        assert again.json()["updated_at"] == first.json()["updated_at"]
    shop.settle()
    assert len(receiver.at("/tn")) == 1
    assert shop.inspect(order["id"])["owner_note"] == "Factura B 0001-00000042"


def test_oauth_code_gives_a_token_for_the_store(make_shop):
    shop = make_shop("tiendanube")
    creds = shop.control.post("/_sim/tokens", json={"store_id": 42}).json()
    body = {"client_id": creds["client_id"], "client_secret": SECRET,
            "grant_type": "authorization_code", "code": creds["code"]}
    with shop.api(UA) as client:
        r = client.post("/apps/authorize/token", json=body)
        assert r.status_code == 200 and r.json()["user_id"] == 42 and r.json()["token_type"] == "bearer"
        token = r.json()["access_token"]
        listed = client.get("/2025-03/42/orders", headers={"Authentication": f"bearer {token}"})
        assert (listed.status_code, listed.json()["description"]) == (404, "Last page is 0")
        assert client.post("/apps/authorize/token", json=body).status_code == 400
