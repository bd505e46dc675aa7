"""Imports every domain's models so ``metadata`` knows all tables (Alembic, tests)."""
from stalela.db.base import Base
from stalela.tenancy import models as _tenancy  # noqa: F401

metadata = Base.metadata
