"""Marketplace connectors: paid orders become sealed invoices exactly once (docs/connectors.md)."""
