"""The control plane: the tenant registry, provisioning of the dedicated tier, moves between tiers, and
the operators' accounts and audit log. It decides where a tenant's data lives; the data plane (every
fiscal domain) reaches that data through the one routing function, ``stalela.tenancy.routing``."""
