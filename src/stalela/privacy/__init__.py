"""Privacy: the data subjects' rights (erasure, portability), retention and offboarding."""
