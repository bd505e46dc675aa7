"""Admission gates: how a domain above fiscal (billing's quotas) may refuse a seal without fiscal
importing it. The domain registers a gate factory here when its module is imported; the composition
roots (``workers.py``, which the app factory imports, and ``sealers.py``) import that module, so the
gates run wherever a group is sealed, in an API process or in a sealer process a seal was routed to.

``seal_many`` opens the gates once per group, under the tenant's log lock (so a gate may count the
tenant's sealed documents exactly: no other sealer of the tenant can add one meanwhile), then asks
each gate about each item after every fiscal rule passed and before it is numbered: a refused item
fails alone and consumes no number. A factory returning None (nothing to check for this tenant)
keeps the common path free of any query.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from stalela.config import Settings


class Gate(Protocol):
    def admit(self, request: Any) -> None:
        """Count the item in, or raise the ``StalelaError`` that refuses it."""

    def release(self, request: Any) -> None:
        """An item this gate admitted was refused afterwards (by a later gate or rule): uncount it."""


GateFactory = Callable[[AsyncSession, Settings, str], Awaitable[Gate | None]]
_FACTORIES: list[GateFactory] = []


def register(factory: GateFactory) -> GateFactory:
    if factory not in _FACTORIES:
        _FACTORIES.append(factory)
    return factory


async def open_gates(session: AsyncSession, settings: Settings, tenant_id: str) -> list[Gate]:
    gates = []
    for factory in _FACTORIES:
        gate = await factory(session, settings, tenant_id)
        if gate is not None:
            gates.append(gate)
    return gates


def admit(gates: list[Gate], request: Any) -> None:
    passed: list[Gate] = []
    try:
        for gate in gates:
            gate.admit(request)
            passed.append(gate)
    except BaseException:
        release(passed, request)
        raise


def release(gates: list[Gate], request: Any) -> None:
    for gate in gates:
        gate.release(request)
