"""One thin client per marketplace API (no maintained Python client covers these four with async httpx and
our outbound guard), behind the protocol of ``base``; ``for_platform`` picks one."""
