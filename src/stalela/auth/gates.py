"""Request gates: how a domain above auth (billing's ``api_calls`` quota) may refuse an authenticated
tenant request without auth importing it. The domain registers a gate here when its module is imported;
the composition root (the app factory) imports that module.

Every request authenticated with a tenant's API key or user token passes the gates after its rate limit
and tenant-status checks, before the endpoint runs (``dependencies._admit``). A gate raises the
``StalelaError`` that refuses the request, or returns. It gets the request's session, bound to the
caller's tenant, when the request has one open already; None when the caller was admitted without one
(a recently verified API key on the sealing path), and then it opens its own if it must read at all.
Gates run on every request: one that has nothing to check must return without any I/O.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from stalela.auth.principal import Principal

RequestGate = Callable[[Request, Principal, AsyncSession | None], Awaitable[None]]
_GATES: list[RequestGate] = []


def register(gate: RequestGate) -> RequestGate:
    if gate not in _GATES:
        _GATES.append(gate)
    return gate


async def admit(request: Request, principal: Principal, session: AsyncSession | None) -> None:
    for gate in _GATES:
        await gate(request, principal, session)
