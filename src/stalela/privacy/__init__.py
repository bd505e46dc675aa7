"""Privacy: data map, per-subject keys, erasure, portability, retention, tenant offboarding."""
