"""Privacy: the data map, retention by law, per-subject keys, erasure, portability, offboarding."""
