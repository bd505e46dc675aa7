"""Server time of the consoles' reads with N invoices on PostgreSQL. Run by hand, not collected by pytest:

    PYTHONPATH=. .venv/bin/python tests/dashboard/measure_scale.py 1000000

Rows are synthetic (bulk SQL, not sealed): what matters is their number and the indexes, which are
the real ones. Prints the best of three runs of each service call behind a console page.
"""
from __future__ import annotations

import asyncio
import pathlib
import sys
import tempfile
import time

from sqlalchemy import text
from tests.support.databases import find_postgres, create_database, drop_database
from stalela.migrations import upgrade
from tests.conftest import make_settings
from stalela.db.session import Database
from stalela.accounts import service as tenancy, schemas
from stalela.tenancy.context import bind_platform, bind_tenant
from stalela.auth.principal import Principal
from stalela.dashboard import service
from stalela.fiscal.invoices.schemas import InvoiceFilters

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000

async def main(url):
    settings = make_settings(url, pathlib.Path(tempfile.mkdtemp()), database_role="")
    db = Database.from_settings(settings)
    async with db.transaction() as s:
        await bind_platform(s)
        tenant, _ = await tenancy.create_tenant(s, settings, schemas.TenantCreate(name="Big", tax_id="B1"))
        await bind_tenant(s, tenant.id)
        p = Principal(kind="user", tenant_id=tenant.id, user_id="u", role="owner")
        outlets = [await tenancy.create_outlet(s, p, schemas.OutletCreate(code=f"O{i}", name=f"O{i}")) for i in range(4)]
    t0 = time.time()
    async with db.transaction() as s:
        await bind_platform(s)
        for k, o in enumerate(outlets):
            n = N // 4
            await s.execute(text(f"""
              INSERT INTO invoices (tenant_id, id, outlet_id, series_id, counter, fiscal_number, type, issued_at, total_cents,
                leaf_index, key_id, seal_hash, signature, payload, document, created_at)
              SELECT '{tenant.id}', 'inv_' || lpad(to_hex(g*4+{k}), 26, '0'), '{o.id}', 'ser_x' || '{k}', g, '{o.id}' || '-' || g, 'FV',
                     now() - make_interval(secs => ({n} - g) * 2), 100, g*4+{k}, 'k', 'h', 's', '{{"total":"1.00","currency":"CDF"}}', '{{}}', now()
              FROM generate_series(1, {n}) g"""), {})
            await s.execute(text(f"""
              INSERT INTO invoice_sync (tenant_id, invoice_id, outlet_id, status, attempts, sealed_at, updated_at)
              SELECT '{tenant.id}', 'inv_' || lpad(to_hex(g*4+{k}), 26, '0'), '{o.id}', CASE WHEN g > {n} - 50 THEN 'pending' ELSE 'acknowledged' END, 1,
                     now(), now() FROM generate_series(1, {n}) g"""), {})
            await s.execute(text(f"INSERT INTO series (tenant_id, id, outlet_id, code, counter, last_hash, updated_at) VALUES ('{tenant.id}', 'ser_x' || '{k}', '{o.id}', 'main', {n}, 'h', now())"),
                            {})
    async with db.transaction() as s:
        await s.execute(text("ANALYZE"))
    print(f"inserted {N} in {time.time()-t0:.1f}s")
    p = Principal(kind="user", tenant_id=tenant.id, user_id="u", role="owner")
    for label, fn in [
        ("home", lambda s: service.home(s, p)),
        ("invoices", lambda s: service.invoice_page(s, p, InvoiceFilters(), None, limit=25, starting_after=None)),
        ("invoices pending", lambda s: service.invoice_page(s, p, InvoiceFilters(), "pending", limit=25, starting_after=None)),
        ("invoices acknowledged", lambda s: service.invoice_page(s, p, InvoiceFilters(), "acknowledged", limit=25, starting_after=None)),
        ("invoices failed", lambda s: service.invoice_page(s, p, InvoiceFilters(), "failed", limit=25, starting_after=None)),
        ("invoices by outlet", lambda s: service.invoice_page(s, p, InvoiceFilters(outlet_id=outlets[1].id), None, limit=25, starting_after=None)),
        ("ops sync", lambda s: service.sync_overview(s)),
    ]:
        best = 1e9
        for _ in range(3):
            async with db.transaction(readonly=True) as s:
                if label.startswith("ops"):
                    await bind_platform(s)
                else:
                    await bind_tenant(s, tenant.id)
                t = time.perf_counter()
                await fn(s)
                best = min(best, time.perf_counter() - t)
        print(f"{label:24s} {best*1000:8.1f} ms")
    await db.dispose()

if __name__ == "__main__":
    server = find_postgres()
    if not server.admin_url:
        sys.exit(f"no PostgreSQL: {server.reason}")
    url = create_database(server.admin_url)
    asyncio.run(upgrade(url))
    try:
        asyncio.run(main(url))
    finally:
        drop_database(server.admin_url, url)
        if server.stop:
            server.stop()
