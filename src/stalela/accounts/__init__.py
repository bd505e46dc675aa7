"""The administration of tenant accounts: tenants, outlets, API keys, and the audit log they read.

These use cases sit above the platform they administer (``tenancy``'s tables and scoping helper,
``auth``'s callers and permissions, ``audit``'s log) and above the fiscal parts a new tenant gets
(its jurisdiction, its first signing key). Inside ``tenancy`` and ``audit`` they closed circles with
``auth`` and ``fiscal``, which build on those two packages.
"""
