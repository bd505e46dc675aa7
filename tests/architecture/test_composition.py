"""The composition roots wire what the lower packages no longer import: outbox handlers and gauges.

Each check runs in a fresh interpreter, since in the test process every module is already imported.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "stalela"

REPORT = """
from stalela.outbox import registry
from stalela.observability import scrape
{imports}
print(sorted(f"{{h.__module__}}.{{h.__name__}}" for h in [*registry.handlers_for("invoice.sealed"),
                                                         *registry.batch_handlers_for("invoice.sealed")]))
print(sorted(s.__module__ for s in scrape._sources))
"""


SEALED_CONSUMERS = ("['stalela.authority.tasks.sync_invoice', 'stalela.billing.usage_tasks.meter_sealed_invoices', "
                    "'stalela.webhooks.tasks.fan_out']")


def wired(imports: str) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", REPORT.format(imports=imports)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    return out[0], out[1]


def test_the_outbox_and_observability_alone_know_no_handler_and_no_gauge():
    assert wired("") == ("[]", "[]")


def test_the_worker_bootstrap_registers_every_consumer():
    handlers, _ = wired("import stalela.workers")
    assert handlers == SEALED_CONSUMERS


def test_the_app_factory_registers_every_consumer_and_every_gauge():
    handlers, gauges = wired("import stalela.app")
    assert handlers == SEALED_CONSUMERS
    assert gauges == ("['stalela.authority.gauges', 'stalela.billing.usage_gauges', 'stalela.fiscal.invoices.gauges', "
                      "'stalela.outbox.gauges', 'stalela.privacy.erasure_gauges', 'stalela.tenancy.gauges']")


def test_no_source_module_is_over_600_lines():
    """Split by responsibility, not by line count; migrations are exempt."""
    long = {str(p.relative_to(SOURCE)): n for p in SOURCE.rglob("*.py") if "migrations" not in p.parts
            and (n := len(p.read_text().splitlines())) > 600}
    assert not long
