"""The client of a connection's platform, with its secrets opened and, for Mercado Libre, its token source."""
from __future__ import annotations

from stalela.config import Settings
from stalela.connectors import credentials
from stalela.connectors.clients.base import PlatformClient
from stalela.connectors.clients.mercadolibre import MercadoLibreClient
from stalela.connectors.clients.shopify import ShopifyClient
from stalela.connectors.clients.tiendanube import TiendaNubeClient
from stalela.connectors.clients.woocommerce import WooCommerceClient
from stalela.connectors.models import Connection
from stalela.db.session import Database


def client_for(db: Database, settings: Settings, connection: Connection) -> PlatformClient:
    private = settings.webhooks_allow_private  # the development switch for every tenant-set outbound URL
    base = connection.api_base_url
    if connection.platform == "mercadolibre":
        return MercadoLibreClient(base, connection.shop, credentials.TokenSource(db, settings, connection), private)
    secrets = credentials.read(settings, connection)
    if connection.platform == "shopify":
        return ShopifyClient(base, secrets, private)
    if connection.platform == "tiendanube":
        return TiendaNubeClient(base, connection.shop, secrets, private)
    return WooCommerceClient(base, secrets, private)
