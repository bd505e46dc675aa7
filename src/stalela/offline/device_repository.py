"""SQL of devices, their registration nonces and their credentials."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update

from stalela.db.repository import Repository
from stalela.offline.models import Device, DeviceCredential, DeviceNonce


class DeviceRepository(Repository[Device]):
    model = Device

    async def by_thumbprint(self, thumbprint: str) -> Device | None:
        stmt = select(Device).where(Device.thumbprint == thumbprint)
        return (await self.session.execute(stmt)).scalar_one_or_none()


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

    async def of_device(self, device_id: str) -> list[DeviceCredential]:
        stmt = select(DeviceCredential).where(DeviceCredential.device_id == device_id)
        return list((await self.session.execute(stmt.order_by(DeviceCredential.jti.desc()))).scalars())

    async def revoked(self) -> list[DeviceCredential]:
        stmt = select(DeviceCredential).where(DeviceCredential.revoked_at.is_not(None))
        return list((await self.session.execute(stmt.order_by(DeviceCredential.status_index))).scalars())
