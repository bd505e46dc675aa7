"""Privacy: the data subjects' rights (portability exports, erasure), the data map and retention."""
