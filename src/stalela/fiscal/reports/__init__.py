"""Z reports (sealed day closes), X reports (the open day so far) and A reports (detail for accountants)."""
