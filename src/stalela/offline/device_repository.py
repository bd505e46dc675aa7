"""SQL of devices, their registration nonces and their credentials."""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update

from stalela.db.repository import Repository, check_cursor
from stalela.offline.models import Device, DeviceCredential, DeviceNonce


class DeviceRepository(Repository[Device]):
    model = Device

    async def get_for_update(self, id_: str) -> Device | None:
        """Locked, and read afresh: a row the session loaded before (``get``) is overwritten with what the
        database holds now (a status changed by a transaction committed since)."""
        stmt = select(Device).where(Device.id == id_).with_for_update().execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_thumbprint(self, thumbprint: str) -> Device | None:
        stmt = select(Device).where(Device.thumbprint == thumbprint)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def list_page(self, *, outlet_id: str | None, status: str | None, outlets: Collection[str] | None,
                        limit: int, starting_after: str | None) -> tuple[list[Device], bool]:
        """Newest first. ``outlets``: the caller's outlets when it is restricted to some (None: all)."""
        scope = select(Device)
        if outlets is not None:
            scope = scope.where(Device.outlet_id.in_(sorted(outlets)))
        stmt = scope
        if outlet_id is not None:
            stmt = stmt.where(Device.outlet_id == outlet_id)
        if status is not None:
            stmt = stmt.where(Device.status == status)
        # A status filter pages over a changing set: the cursor is checked against the unfiltered list.
        return await self.page(stmt, limit=limit, starting_after=starting_after, scope=scope)

    async def all_of(self, outlets: Collection[str] | None) -> list[Device]:
        stmt = select(Device)
        if outlets is not None:
            stmt = stmt.where(Device.outlet_id.in_(sorted(outlets)))
        return list((await self.session.execute(stmt.order_by(Device.id.desc()))).scalars())


class NonceRepository:
    def __init__(self, session) -> None:  # noqa: ANN001
        self.session = session

    async def add(self, nonce: DeviceNonce) -> None:
        self.session.add(nonce)
        await self.session.flush()

    async def consume(self, nonce: str, now: datetime) -> bool:
        """Mark ``nonce`` used if it exists, is unused and unexpired: one UPDATE, so two registrations
        racing with one nonce cannot both win."""
        stmt = (update(DeviceNonce).where(DeviceNonce.nonce == nonce, DeviceNonce.used_at.is_(None),
                                          DeviceNonce.expires_at > now)
                .values(used_at=now).execution_options(synchronize_session=False))
        return (await self.session.execute(stmt)).rowcount == 1


class CredentialRepository(Repository[DeviceCredential]):
    model = DeviceCredential

    async def get(self, id_: str) -> DeviceCredential | None:  # keyed by jti
        stmt = select(DeviceCredential).where(DeviceCredential.jti == id_)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get_for_update(self, id_: str) -> DeviceCredential | None:
        stmt = select(DeviceCredential).where(DeviceCredential.jti == id_).with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def next_status_index(self) -> int:
        """The next free bit of the tenant's status list. Callers hold the tenant's log lock (block
        allocation takes it), which serialises issuance; the unique index is the backstop."""
        stmt = select(func.coalesce(func.max(DeviceCredential.status_index), -1) + 1)
        return int((await self.session.execute(stmt)).scalar_one())

    async def of_devices(self, device_ids: Collection[str]) -> list[DeviceCredential]:
        if not device_ids:
            return []
        stmt = select(DeviceCredential).where(DeviceCredential.device_id.in_(sorted(device_ids)))
        return list((await self.session.execute(stmt.order_by(DeviceCredential.jti.desc()))).scalars())

    async def page_of_device(self, device_id: str, *, limit: int,
                             starting_after: str | None) -> tuple[list[DeviceCredential], bool]:
        """Newest first (``jti`` ids are time-ordered, like every id)."""
        stmt = select(DeviceCredential).where(DeviceCredential.device_id == device_id)
        if starting_after:
            await check_cursor(self.session, stmt, DeviceCredential.jti, starting_after)
            stmt = stmt.where(DeviceCredential.jti < starting_after)
        rows = list((await self.session.execute(stmt.order_by(DeviceCredential.jti.desc()).limit(limit + 1))).scalars())
        return rows[:limit], len(rows) > limit

    async def live_of_device_for_update(self, device_id: str, now: datetime) -> list[DeviceCredential]:
        """The device's credentials neither revoked nor expired, locked (a disable revokes them all)."""
        stmt = (select(DeviceCredential)
                .where(DeviceCredential.device_id == device_id, DeviceCredential.revoked_at.is_(None),
                       DeviceCredential.expires_at > now)
                .order_by(DeviceCredential.jti).with_for_update())
        return list((await self.session.execute(stmt)).scalars())

    async def revoked(self) -> list[DeviceCredential]:
        stmt = select(DeviceCredential).where(DeviceCredential.revoked_at.is_not(None))
        return list((await self.session.execute(stmt.order_by(DeviceCredential.status_index))).scalars())

    async def max_status_index(self) -> int | None:
        return (await self.session.execute(select(func.max(DeviceCredential.status_index)))).scalar_one()
