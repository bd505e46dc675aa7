from __future__ import annotations

from fastapi import APIRouter

from stalela.auth.dependencies import PublicRateLimit, PublicSession
from stalela.fiscal.signing import registry
from stalela.fiscal.signing.repository import SigningKeyRepository
from stalela.kit.schemas import PathId
from stalela.kit.jsonbody import JSONRoute

router = APIRouter(route_class=JSONRoute, tags=["keys"], dependencies=[PublicRateLimit])


@router.get("/v1/keys/{key_id}")
async def get_key(key_id: PathId, session: PublicSession):
    """A signing key's public JWK (kty EC, crv P-256, alg ES256) with its status and validity. No auth."""
    return registry.public_view(await registry.get_public_key(session, key_id))


@router.get("/.well-known/jwks.json")
async def jwks(session: PublicSession):
    """Every signing key ever used, retired ones included, so any old seal stays verifiable."""
    return {"keys": [registry.public_view(k) for k in await SigningKeyRepository(session).all_keys()]}
