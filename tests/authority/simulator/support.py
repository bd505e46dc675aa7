"""Helpers for the simulator tests: request bodies and a running simulator."""
from __future__ import annotations

from dataclasses import dataclass, field

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
    _control: httpx.Client | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = TOKEN, timeout: float = 10) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @property
    def control(self) -> httpx.Client:
        """A client for the /_sim test controls (no auth), kept for the simulator's lifetime."""
        if self._control is None:
            self._control = httpx.Client(base_url=self.url, timeout=10)
        return self._control

    def records(self) -> dict:
        return self.control.get("/_sim/records").json()

    def set_faults(self, **spec: object) -> None:
        r = self.control.put("/_sim/faults", json=spec)
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
        self.server.stop()


def start_sim(devices: dict[str, str] | None = None, faults: FaultSpec | None = None,
              nifs: dict[str, str] | None = None, **kwargs: object) -> Sim:
    app = create_app(devices or {NIM: TOKEN}, faults, {NIM: NIF} if nifs is None else nifs,
                     **kwargs)
    return Sim(SimulatorServer(app).start())
