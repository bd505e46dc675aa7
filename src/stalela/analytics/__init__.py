"""Analytics: counts, revenue, taxes, buyers, types, outlets, the authority's answers and a forecast, from the
additive sums sealing and the authority agent keep (docs/analytics.md)."""
