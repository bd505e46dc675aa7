"""Helpers for the simulator tests: request bodies and a running simulator."""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from stalela.authority.simulator import FaultSpec, SimulatorServer, create_app

NIM, TOKEN, NIF = "SIM00001", "token-one", "A1234567B"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def item(group: str = "B", price: object = "100.00", quantity: object = 1, *,
         type: str | None = None, name: str = "Article") -> dict:
    kind = type or ("TAX" if group in "LN" else "BIE")
    return {"code": None, "type": kind, "name": name, "price": price, "quantity": quantity,
            "taxGroup": group}


def invoice(rn: str = "FV-1", items: list[dict] | None = None, *, mode: str = "ht",
            type: str = "FV", nif: str = NIF, **extra: object) -> dict:
    body = {"nif": nif, "rn": rn, "mode": mode, "type": type, "items": items or [item()],
            "client": None, "operator": {"id": "op-1", "name": "Caissier"}, "payment": [],
            "reference": None}
    body.update(extra)
    return body


@dataclass
class Sim:
    server: SimulatorServer

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = TOKEN, timeout: float = 10) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def control(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def records(self) -> dict:
        return httpx.get(f"{self.url}/_sim/records", timeout=10).json()

    def set_faults(self, **spec: object) -> None:
        r = httpx.put(f"{self.url}/_sim/faults", json=spec, timeout=10)
        assert r.status_code == 200, r.text


def start_sim(devices: dict[str, str] | None = None, faults: FaultSpec | None = None,
              nifs: dict[str, str] | None = None, **kwargs: object) -> Sim:
    app = create_app(devices or {NIM: TOKEN}, faults, {NIM: NIF} if nifs is None else nifs,
                     **kwargs)
    return Sim(SimulatorServer(app).start())
