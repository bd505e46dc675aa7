"""Platform billing: usage events, daily aggregates, rate cards and plans, anomalies, monthly bills
sealed as fiscal invoices by the platform's own issuing tenant (docs/billing.md).

Modules are grouped by prefix, one group per capability, each with the domain's file names:
``usage_*`` (events, metering, daily aggregates), ``rating_*`` (rate cards, plans, quotas),
``anomaly_*`` (detection and its events), ``bill_*`` (the monthly cycle and the tenant's bills).
"""
