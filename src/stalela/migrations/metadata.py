"""Imports every domain's models so ``metadata`` knows all tables: Alembic's environment (``env.py``) reads it.

Only ``env.py`` imports this module, so running the migrations package's functions loads no model."""
from stalela.assistants import models as _assistants  # noqa: F401
from stalela.audit import models as _audit  # noqa: F401
from stalela.auth import models as _auth  # noqa: F401
from stalela.authority import models as _authority  # noqa: F401
from stalela.authority.arca import models as _arca  # noqa: F401
from stalela.billing import anomaly_models as _anomalies  # noqa: F401
from stalela.billing import bill_models as _bills  # noqa: F401
from stalela.billing import rating_models as _rating  # noqa: F401
from stalela.billing import usage_models as _usage  # noqa: F401
from stalela.connectors import models as _connectors  # noqa: F401
from stalela.controlplane import models as _controlplane  # noqa: F401
from stalela.controlplane import operator_models as _operators  # noqa: F401
from stalela.db.base import Base
from stalela.fiscal.invoices import models as _invoices  # noqa: F401
from stalela.fiscal.ledger import models as _ledger  # noqa: F401
from stalela.fiscal.reports import models as _reports  # noqa: F401
from stalela.fiscal.signing import models as _signing  # noqa: F401
from stalela.fiscal.subjects import models as _subjects  # noqa: F401
from stalela.offline import models as _offline  # noqa: F401
from stalela.outbox import models as _outbox  # noqa: F401
from stalela.privacy import erasure_models as _erasure  # noqa: F401
from stalela.privacy import offboarding_models as _offboarding  # noqa: F401
from stalela.privacy import retention_models as _retention  # noqa: F401
from stalela.privacy import export_models as _privacy_exports  # noqa: F401
from stalela.tenancy import models as _tenancy  # noqa: F401
from stalela.webhooks import models as _webhooks  # noqa: F401

metadata = Base.metadata
