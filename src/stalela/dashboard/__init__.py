"""Server-rendered consoles: the merchant console (/app) and the operations console (/ops).

Both are thin HTML faces over the domain services; see docs/dashboards.md.
"""
