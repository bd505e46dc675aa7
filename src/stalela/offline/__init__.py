"""Offline sealing: devices, delegated credentials, returning batches, voids (docs/offline.md)."""
