"""Outbox handlers of the authority domain (the DGI sync agent)."""
from __future__ import annotations
