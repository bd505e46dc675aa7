"""Data subjects: the buyers named on sealed invoices, each under its own key (crypto-shredding)."""
