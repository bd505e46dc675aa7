"""The ledger's costs: verifying an audit export, the Merkle append per seal, inclusion proofs served.

Usage: .venv/bin/python bench/verify.py [--quick] [--invoices 100000] [--append-seals 3000]
                                        [--leaves 1000000] [--seconds 5] [--no-save]
  a) verify  a ledger of N invoices sealed in-process (seal_invoice, 500 per transaction, a checkpoint
             every 10,000), exported (write_export); verify_export's invoices/s next to the raw ES256
             verify rate of the same signature on one core. Plus a bench-only parallel prototype.
  b) append  K seals with the Merkle append (ledger.service.LogAppender: leaves appended in memory,
             nodes and head written once per transaction) and K with it a no-op, interleaved in
             blocks, at 1 and 100 seals per transaction.
  c) proofs  a synthetic log of L leaves COPYed into merkle_nodes; inclusion proofs/s through
             ledger.service.inclusion_proof, and pymerkle's SqliteTree over the same leaves.
Database and server: bench/seal.py's Server (a throwaway database migrated by `stalela serve`), whose
real GET /v1/invoices/{id}/proof is also checked against the built ledger. Exit 1 only on a wrong result.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import sys
import tarfile
import tempfile
import time
from collections import deque
from pathlib import Path

import psycopg
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from stalela.auth.principal import Principal
from stalela.config import Settings
from stalela.db.session import Database
from stalela.fiscal.core import merkle, seal as seal_core
from stalela.fiscal.invoices import service as invoice_service
from stalela.fiscal.ledger.service import LogAppender
from stalela.fiscal.invoices.sealing import SealRequest
from stalela.fiscal.invoices.schemas import InvoiceCreate
from stalela.fiscal.ledger import service as ledger, verify as verify_mod
from stalela.fiscal.reports.audit import verify_export
from stalela.fiscal.reports.export import write_export
from stalela.fiscal.ledger.verify import LedgerVerifier
from stalela.accounts import schemas as tenancy_schemas, service as tenancy
from stalela.tenancy.context import bind_platform, bind_tenant

sys.path.insert(0, str(Path(__file__).parent))
import seal as seal_bench  # noqa: E402  (Server, pg_info, git_commit, api, INVOICE, RESULTS)

OUTLETS, CHECKPOINT_EVERY = 4, 10_000
PYMERKLE_CACHE = Path(tempfile.gettempdir()) / "stalela-bench-pymerkle"


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the verification workers): unlike wall time,
    it does not move when other work shares the machine."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fake_seal_hash(i: int) -> bytes:
    """The 32 raw bytes standing for the seal hash of synthetic leaf i (in our log and in pymerkle's)."""
    return hashlib.sha256(b"leaf-%d" % i).digest()


# ---- building a ledger in-process ----------------------------------------------------------------

async def new_tenant(db: Database, settings: Settings, name: str) -> tuple[Principal, list[str], str]:
    async with db.transaction() as session:
        await bind_platform(session)
        tenant, key = await tenancy.create_tenant(session, settings, tenancy_schemas.TenantCreate(
            name=name, tax_id="B" + hashlib.sha256(name.encode()).hexdigest()[:8], jurisdiction="CD"))
        principal = Principal(kind="api_key", tenant_id=tenant.id)
        outlets = [(await tenancy.create_outlet(session, principal, tenancy_schemas.OutletCreate(
            code=f"B{i + 1}", name=f"Bench {i + 1}"))).id for i in range(OUTLETS)]
    return principal, outlets, key.secret


async def seal_many(db: Database, settings: Settings, principal: Principal, outlets: list[str], count: int,
                    per_txn: int, start: int = 0) -> float:
    """Seal `count` invoices round-robin over the outlets, `per_txn` per transaction; seconds taken."""
    bodies = [InvoiceCreate.model_validate(json.loads(seal_bench.INVOICE.replace("OUTLET_ID", o))) for o in outlets]
    t0, done = time.perf_counter(), 0
    while done < count:
        step = min(per_txn, count - done)
        async with db.transaction() as session:
            await bind_tenant(session, principal.tenant_id)
            # One group per transaction, as the group commit and the batch endpoint seal.
            await invoice_service.seal_many(session, settings, principal.tenant_id, [
                SealRequest(principal, bodies[(start + done + i) % OUTLETS]) for i in range(step)])
        done += step
    return time.perf_counter() - t0


async def build_ledger(db: Database, settings: Settings, n: int) -> dict:
    principal, outlets, api_key = await new_tenant(db, settings, "Verify bench")
    t0, built = time.perf_counter(), 0
    while built < n:
        step = min(CHECKPOINT_EVERY, n - built)
        await seal_many(db, settings, principal, outlets, step, 500, built)
        built += step
        async with db.transaction() as session:
            await bind_tenant(session, principal.tenant_id)
            await ledger.create_checkpoint(session, settings, principal.tenant_id, "on_demand")
        took = time.perf_counter() - t0
        print(f"   built {built:,}/{n:,} invoices in {took:.0f} s ({built / took:.0f}/s)", flush=True)
    return {"tenant_id": principal.tenant_id, "api_key": api_key, "seconds": time.perf_counter() - t0}


async def export_ledger(db: Database, settings: Settings, tenant_id: str, path: Path) -> float:
    t0 = time.perf_counter()
    async with db.transaction(readonly=True) as session:
        await bind_tenant(session, tenant_id)
        await write_export(session, settings, tenant_id, path)
    return time.perf_counter() - t0


# ---- a) verification speed -----------------------------------------------------------------------

def raw_verify_rate(path: Path, seconds: float) -> tuple[float, float, int]:
    """ES256 verifications per second and per CPU-second, one core, with the key, message and signature
    of the export's first seal; and the message's size."""
    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if member.name == "keys.json":
                jwks = json.loads(tar.extractfile(member).read())["keys"]
            elif member.name == "invoices.jsonl":
                seal = json.loads(tar.extractfile(member).readline())["invoice"]["seal"]
                break
    key = seal_core.public_key_from_jwk(next(k for k in jwks if k["kid"] == seal["key_id"]))
    message = seal_core.canonical_bytes(seal["payload"])
    der = seal_core.raw_signature_to_der(seal_core.b64url_decode(seal["signature"]))
    algorithm, n, t0, cpu0 = ec.ECDSA(hashes.SHA256()), 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(200):
            key.verify(der, message, algorithm)
        n += 200
    return n / elapsed, n / (time.process_time() - cpu0), len(message)


# The parallel prototype (bench only). Workers take chunks of invoices.jsonl and do what is independent
# per invoice (seal, document, lines, inclusion proof against the signed roots); the main process keeps
# the sequential state (chains per series, the recomputed root at every checkpoint).
_WORKER: dict = {}


def _fast_jcs(obj: object, expected_hex: str | None) -> bytes:
    """json.dumps with sorted keys is RFC 8785 for what seals hold (no floats, ASCII keys); whenever its
    SHA-256 is not the expected one, the real JCS is used, so the verdict stays the product's."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return data if expected_hex and hashlib.sha256(data).hexdigest() == expected_hex else rfc8785.dumps(obj)


def _worker_init(tenant_id: str, jwks: list[dict], roots: dict[int, str], fast: bool) -> None:
    verifier = LedgerVerifier(tenant_id, jwks, complete=False)
    verifier._checkpoint_roots = roots
    _WORKER.update(verifier=verifier, expect={})
    if fast:  # patched in the worker processes only
        expect = _WORKER["expect"]
        seal_core.canonical_bytes = lambda obj: _fast_jcs(obj, expect.get("seal"))
        verify_mod.rfc8785 = type("JCS", (), {"dumps": staticmethod(lambda obj: _fast_jcs(obj, expect.get("lines")))})


def _worker_chunk(lines: list[bytes]) -> tuple[list[tuple], list, int, int]:
    v, expect = _WORKER["verifier"], _WORKER["expect"]
    v.report.failures, v.report.failure_count, v.report.inclusion_proofs = [], 0, 0
    out = []
    for line in lines:
        entry = json.loads(line)
        inv = {**(entry.get("invoice") or {}), "leaf_index": entry.get("leaf_index")}
        seal = inv.get("seal") or {}
        payload = seal.get("payload") or {}
        expect.update(seal=seal.get("hash"), lines=payload.get("lines_hash"))
        where = {"invoice_id": inv.get("id"), "outlet_id": inv.get("outlet_id"), "counter": inv.get("counter"),
                 "fiscal_number": inv.get("fiscal_number"), "leaf_index": inv.get("leaf_index")}
        check = seal_core.verify_seal(seal, v.keys.get(seal.get("key_id")))
        if check:
            v._document_matches(inv, payload, where)
        else:
            v.fail("seal_invalid", check.reason or "invalid", **where)
        if entry.get("inclusion_proof"):
            v.inclusion(entry["inclusion_proof"], seal.get("hash", ""), where)
        signed = payload if check else inv
        out.append((signed.get("series_id") or signed.get("outlet_id"), signed.get("counter"),
                    signed.get("prev_hash"), seal.get("hash", ""), inv.get("leaf_index"), inv.get("id")))
    return out, v.report.failures, v.report.failure_count, v.report.inclusion_proofs


def parallel_verify(path: Path, workers: int, fast: bool, chunk: int = 1000) -> dict:
    """verify_export's checks and verdict for a well-formed export, spread over processes (a prototype:
    it skips verify_export's checks for unexpected or missing members)."""
    t0, cpu0, seq, manifest, pool, seen, pending = time.perf_counter(), cpu_seconds(), None, None, None, {}, deque()  # seq: chains, root

    def drain(limit: int) -> None:
        while len(pending) > limit:
            rows, failures, count, proofs = pending.popleft().get()
            seq.report.failures += failures
            seq.report.failure_count += count
            seq.report.inclusion_proofs += proofs
            for series, counter, prev, seal_hash, leaf, invoice_id in rows:
                seq.report.invoices += 1
                where = {"invoice_id": invoice_id, "counter": counter, "leaf_index": leaf}
                seq._chain({"series_id": series, "counter": counter, "prev_hash": prev}, seal_hash, where)
                seq._leaf({"leaf_index": leaf}, seal_hash, None, where)

    with tarfile.open(path, "r|gz") as tar:
        for member in tar:
            data, digest = tar.extractfile(member), hashlib.sha256()
            if member.name in ("manifest.json", "keys.json", "checkpoints.jsonl"):
                raw = data.read()
                digest.update(raw)
                if member.name == "manifest.json":
                    manifest = json.loads(raw)
                elif member.name == "keys.json":
                    seq = LedgerVerifier(manifest["payload"]["tenant_id"], json.loads(raw)["keys"])
                    if not seal_core.verify_seal(manifest, seq.keys.get(manifest["key_id"])):
                        seq.fail("manifest_invalid", "bad signature")
                else:
                    seq.checkpoints(json.loads(ln) for ln in raw.splitlines())
                    pool = mp.get_context("fork").Pool(workers, _worker_init, (
                        seq.report.tenant_id, list(seq.keys.values()), seq._checkpoint_roots, fast))
            elif member.name == "consistency.jsonl":
                for line in data:
                    digest.update(line)
                    seq.consistency(json.loads(line))
            elif member.name == "invoices.jsonl":
                batch: list[bytes] = []
                for line in data:
                    digest.update(line)
                    batch.append(line)
                    if len(batch) == chunk:
                        pending.append(pool.apply_async(_worker_chunk, (batch,)))
                        batch = []
                        drain(4 * workers)  # bounded memory: a few chunks in flight
                pending.append(pool.apply_async(_worker_chunk, (batch,)))
                drain(0)
            seen[member.name] = digest.hexdigest()
    pool.close()
    pool.join()
    for entry in manifest["payload"]["files"]:
        if seen.get(entry["name"]) != entry["sha256"]:
            seq.fail("file_altered", entry["name"])
    report = seq.finish()
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - cpu0, "valid": report.valid,
            "invoices": report.invoices,
            "checkpoints_matched": report.checkpoints_matched, "inclusion_proofs": report.inclusion_proofs}


def bench_verify(path: Path, n: int, seconds: float) -> dict:
    """Each variant right after a raw measurement; the baseline is the best of them (the machine is
    shared, so a single raw figure may have been taken in a busy moment). Wall rates are what a user
    waits for; CPU rates (invoices per CPU-second, all processes) do not depend on other load."""
    raws, raws_cpu, out, workers = [], [], {"invoices": n, "export_bytes": path.stat().st_size}, os.cpu_count() or 1
    for name, fast in (("single", None), ("parallel", False), ("parallel_fast_jcs", True)):
        rate, cpu_rate, out["message_bytes"] = raw_verify_rate(path, seconds / 3)
        raws.append(rate)
        raws_cpu.append(cpu_rate)
        if fast is None:
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            report = verify_export(path)
            assert report.valid and report.invoices == n, [f.describe() for f in report.failures[:3]]
            r = {"seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - cpu0, "workers": 1,
                 "checkpoints_matched": report.checkpoints_matched, "inclusion_proofs": report.inclusion_proofs}
        else:
            r = {**parallel_verify(path, workers, fast), "workers": workers}
            assert r["valid"] and (r["invoices"], r["checkpoints_matched"]) == (n, report.checkpoints_matched), r
        out[name] = {**r, "rate": n / r["seconds"], "cpu_rate": n / r["cpu_seconds"]}
    out.update(raw_ecdsa_rates=raws, raw_ecdsa_rate=max(raws), raw_ecdsa_cpu_rate=max(raws_cpu))
    for name in ("single", "parallel", "parallel_fast_jcs"):
        out[name]["ratio"] = out[name]["rate"] / out["raw_ecdsa_rate"]
        out[name]["cpu_ratio"] = out[name]["cpu_rate"] / out["raw_ecdsa_cpu_rate"]
    return out


# ---- b) the Merkle append's cost per seal --------------------------------------------------------

async def bench_append(db: Database, settings: Settings, k: int) -> dict:
    """A tenant per variant, sealed in alternating blocks so that drift on a shared machine hits all."""
    leaves = iter(range(10**6, 10**12))

    real_append, real_write = LogAppender.append, LogAppender.write
    inside = {"with": 0.0}

    def timed_append(self, seal_hash_hex):  # noqa: ANN001, ANN202 - the time spent inside the append itself
        t0 = time.perf_counter()
        try:
            return real_append(self, seal_hash_hex)
        finally:
            inside["with"] += time.perf_counter() - t0

    async def timed_write(self):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        try:
            return await real_write(self)
        finally:
            inside["with"] += time.perf_counter() - t0

    async def no_write(self):  # noqa: ANN001, ANN202, ARG001
        return None

    variants = {"with": (timed_append, timed_write),
                "without": (lambda self, seal_hash_hex: next(leaves), no_write)}  # unique leaf indexes
    tenants = {name: await new_tenant(db, settings, f"Append {name}") for name in variants}
    for principal, outlets, _ in tenants.values():  # warm-up with real appends
        await seal_many(db, settings, principal, outlets, 20, 20)
    out: dict = {}
    for per_txn in (1, 100):
        inside.update(dict.fromkeys(inside, 0.0))
        seconds, done, block, names = dict.fromkeys(variants, 0.0), 0, max(per_txn, k // 10), list(variants)
        while done < k:
            step = min(block, k - done)
            for name in names:
                principal, outlets, _ = tenants[name]
                LogAppender.append, LogAppender.write = variants[name]
                try:
                    seconds[name] += await seal_many(db, settings, principal, outlets, step, per_txn, done)
                finally:
                    LogAppender.append, LogAppender.write = real_append, real_write
            names, done = names[1:] + names[:1], done + step  # rotate who goes first
        ms = {name: seconds[name] / k * 1000 for name in variants}
        out[f"{per_txn}_per_txn"] = {"seals": k, **{f"{n}_ms": v for n, v in ms.items()},
                                     "relative_cost": ms["with"] / ms["without"] - 1,
                                     **{f"{n}_inside_ms": v / k * 1000 for n, v in inside.items()}}
    tree, t0 = merkle.CompactRange(), time.perf_counter()
    for i in range(100_000):
        tree.append(merkle.leaf_hash(fake_seal_hash(i)))
    out["compact_range_append_us"] = (time.perf_counter() - t0) / 100_000 * 1e6
    return out


# ---- c) inclusion proofs from PostgreSQL ---------------------------------------------------------

def fill_log(dsn: str, tenant_id: str, leaves: int) -> tuple[float, str, int]:
    """COPY a log of `leaves` synthetic leaves into merkle_nodes/merkle_logs; (seconds, root hex, nodes)."""
    tree, nodes, t0 = merkle.CompactRange(), 0, time.perf_counter()
    with psycopg.connect(dsn) as conn:  # as the owner: a bulk load, not the service's path
        with conn.cursor().copy("COPY merkle_nodes (tenant_id, level, idx, hash) FROM STDIN") as copy:
            for i in range(leaves):
                for level, idx, h in tree.append(merkle.leaf_hash(fake_seal_hash(i))):
                    copy.write_row((tenant_id, level, idx, h))
                    nodes += 1
        conn.execute("INSERT INTO merkle_logs (tenant_id, size, frontier, updated_at) VALUES (%s, %s, %s, now())",
                     (tenant_id, tree.size, tree.to_bytes()))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE merkle_nodes")
    return time.perf_counter() - t0, tree.root().hex(), nodes


LEAN_SQL = ("SELECT level, idx, hash FROM merkle_nodes WHERE tenant_id = $1 AND (level, idx) IN "
            "(SELECT * FROM unnest($2::int2[], $3::int8[]))")


async def _proof_loop(url: str, tenant_id: str, size: int, root: str, lean: bool, tasks: int,
                      start_at: float, seconds: float) -> int:
    """`tasks` concurrent requesters of random leaves' proofs from start_at for `seconds`; proofs made.

    service: what GET /v1/invoices/{id}/proof runs after the invoice lookup: a read-only transaction
    bound to the tenant, then ledger.service.inclusion_proof (the log size, then the nodes).
    lean: one prepared statement per proof on a connection bound to the tenant (under RLS, as the app
    role), the tree size given (a checkpoint's), no ORM: about the floor for a proof read from PostgreSQL.
    """
    import asyncpg

    rng, expected_root, role = random.Random(os.getpid()), bytes.fromhex(root), Settings().database_role
    db = None if lean else Database(url, role=role, pool_size=tasks)
    conns = []  # lean: a connection per requester (a pool's RESET ALL on release would unbind the tenant)
    for _ in range(tasks if lean else 0):
        conns.append(await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql")))
        await conns[-1].execute(f"SET ROLE {role}; SELECT set_config('stalela.tenant_id', '{tenant_id}', false)")

    async def one(conn) -> tuple[int, list[bytes], bytes]:  # noqa: ANN001
        i = rng.randrange(size)
        if lean:
            wanted = merkle.inclusion_nodes(i, size) + merkle.root_nodes(size)
            rows = await conn.fetch(LEAN_SQL, tenant_id, [w[0] for w in wanted], [w[1] for w in wanted])
            nodes = {(r[0], r[1]): bytes(r[2]) for r in rows}
            return i, merkle.inclusion_proof(i, size, nodes), merkle.root_from_nodes(size, nodes)
        async with db.transaction(readonly=True) as session:
            await bind_tenant(session, tenant_id)
            p = await ledger.inclusion_proof(session, tenant_id, i, fake_seal_hash(i).hex(), None)
        return i, merkle.proof_from_hex(p["audit_path"]), bytes.fromhex(p["root_hash"])

    for n in range(20):  # warm-up; each of these proofs is verified
        i, path, got_root = await one(conns[n % tasks] if lean else None)
        assert got_root == expected_root and merkle.verify_inclusion(
            merkle.leaf_hash(fake_seal_hash(i)), i, size, path, expected_root)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline, count = time.time() + seconds, 0

    async def requester(conn) -> None:  # noqa: ANN001
        nonlocal count
        while time.time() < deadline:
            await one(conn)
            count += 1

    await asyncio.gather(*(requester(conns[t] if lean else None) for t in range(tasks)))
    await asyncio.gather(*(conn.close() for conn in conns), *([db.dispose()] if db else []))
    return count


def _proof_process(*args) -> int:  # noqa: ANN002
    return asyncio.run(_proof_loop(*args))


def proofs_per_second(url: str, tenant_id: str, size: int, root: str, lean: bool, procs: int, seconds: float) -> float:
    start_at = time.time() + 4  # every process connected and warmed up before the clock starts
    with mp.get_context("spawn").Pool(procs) as pool:
        counts = pool.starmap(_proof_process, [(url, tenant_id, size, root, lean, 8, start_at, seconds)] * procs)
    return sum(counts) / seconds


def pymerkle_proofs(leaves: int, root: str, seconds: float) -> dict:
    try:
        from pymerkle import SqliteTree, verify_inclusion
    except ImportError:
        return {"error": "pymerkle is not installed (.venv/bin/pip install pymerkle)"}
    PYMERKLE_CACHE.mkdir(exist_ok=True)
    path, out = PYMERKLE_CACHE / f"leaves-{leaves}.db", {}
    if not path.exists():  # built once and kept under /tmp: its build is not what is compared
        t0 = time.perf_counter()
        with SqliteTree(str(path.with_suffix(".partial"))) as tree:
            tree.append_entries(fake_seal_hash(i) for i in range(leaves))
        path.with_suffix(".partial").rename(path)
        out["build_seconds"] = time.perf_counter() - t0
    with SqliteTree(str(path)) as tree:
        t0 = time.perf_counter()
        their_root = tree.get_root(leaves)
        out["first_root_seconds"] = time.perf_counter() - t0  # its subroot cache starts cold in each process
        out["same_root"] = their_root.hex() == root
        verify_inclusion(tree.get_leaf(1), their_root, tree.prove_inclusion(1, leaves))  # raises if invalid
        rng = random.Random(1)

        def rate() -> float:
            n, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < seconds:
                tree.prove_inclusion(rng.randrange(leaves) + 1, leaves)
                n += 1
            return n / elapsed

        out["cold_rate"], t0 = rate(), time.perf_counter()
        for i in range(1, leaves + 1, 128):  # warm its subroot cache: a proof at every 128th leaf (bounded)
            tree.prove_inclusion(i, leaves)
            if time.perf_counter() - t0 > 300:
                break
        out["warmup_seconds"] = time.perf_counter() - t0
        return {**out, "rate": rate()}


def http_proofs(srv: seal_bench.Server, api_key: str, tenant_id: str, sample: int) -> dict:
    """The real GET /v1/invoices/{id}/proof for random invoices of the built ledger, each verified."""
    with psycopg.connect(srv.dsn) as conn:
        rows = conn.execute("SELECT id, seal_hash FROM invoices WHERE tenant_id = %s ORDER BY random() LIMIT %s",
                            (tenant_id, sample)).fetchall()
        root = conn.execute("SELECT root_hash FROM checkpoints WHERE tenant_id = %s ORDER BY tree_size DESC LIMIT 1",
                            (tenant_id,)).fetchone()[0]
    t0, ok = time.perf_counter(), 0
    for invoice_id, seal_hash in rows:
        status, p = seal_bench.api(srv.base, "GET", f"/v1/invoices/{invoice_id}/proof", api_key)
        ok += status == 200 and p["root_hash"] == root and merkle.verify_inclusion(
            merkle.seal_leaf_hash(seal_hash), p["leaf_index"], p["tree_size"], merkle.proof_from_hex(p["audit_path"]),
            bytes.fromhex(root))
    return {"requests": len(rows), "verified": ok, "rate": len(rows) / (time.perf_counter() - t0)}


# ---- the run -------------------------------------------------------------------------------------

def print_table(info: dict, r: dict) -> None:
    v, a, p, h = r.get("verify"), r.get("append"), r.get("proofs"), r.get("http_proofs")  # None: a part not run
    print(f"\nverify bench  {info['cpu_count']} CPUs  python {info['python']}  postgres {info['postgres_version']}  "
          f"fsync={info['fsync']}  synchronous_commit={info['synchronous_commit']}  commit={(info['git_commit'] or '?')[:10]}")
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    rows = [("what", "measured", "baseline (same run)", "ratio", "goal")]
    for name, label in (("single", "verify_export, 1 process"), ("parallel", "parallel prototype"),
                        ("parallel_fast_jcs", "parallel + fast JCS")) if v else ():
        x = v[name]
        rows.append((f"a) {label}" if name == "single" else f"   {label}, {x['workers']} workers",
                     f"{x['rate']:,.0f}/s (cpu {x['cpu_rate']:,.0f}/s)",
                     f"raw ES256 {v['raw_ecdsa_rate']:,.0f}/s (cpu {v['raw_ecdsa_cpu_rate']:,.0f}/s)"
                     if name == "single" else "same",
                     f"{x['ratio']:.0%} (cpu {x['cpu_ratio']:.0%})",
                     f">= 80% {met(x['ratio'] >= 0.8)}" + (f" on {x['workers']} cores" if x["workers"] > 1 else "")))
    for key in ("1_per_txn", "100_per_txn") if a else ():
        x, per = a[key], key.split("_")[0]
        rows.append((f"b) seal with Merkle append, {per}/txn", f"{x['with_ms']:.2f} ms/seal ({x['with_inside_ms']:.2f} in it)",
                     f"append a no-op {x['without_ms']:.2f} ms", f"{x['relative_cost']:+.0%}",
                     f"< 10% {met(x['relative_cost'] < 0.1)}"))
    pm = p["pymerkle"] if p else {}
    base = f"pymerkle SqliteTree {pm['rate']:,.0f}/s (1 proc, warm)" if "rate" in pm else pm.get("error", "-")
    for key, label in (("service_1x8", "service, 1 proc x 8 tasks"), ("service_2x8", "service, 2 procs x 8 tasks"),
                       ("lean_2x8", "one query, 2 procs x 8 tasks")) if p else ():
        rows.append((f"c) proofs, {p['leaves']:,} leaves, {label}", f"{p[key]:,.0f}/s", base,
                     f"{p[key] / pm['rate']:.2f}x" if "rate" in pm else "-", f">= 10,000/s {met(p[key] >= 10_000)}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for n, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            print("-" * (sum(widths) + 8))
    if v:
        print(f"a) {v['invoices']:,} invoices, {v['message_bytes']} B signed payloads; raw ES256 rates measured before "
              f"each variant: {', '.join(f'{x:,.0f}' for x in v['raw_ecdsa_rates'])}/s (baseline: the best); cpu = per "
              f"CPU-second of all the verifier's processes, immune to other load (load average {info['loadavg'][0]} at "
              f"the start, {info['loadavg_end'][0]} at the end)")
        print(f"   built {v['invoices']:,} invoices in-process in {r['build_seconds']:.0f} s ({v['invoices'] / r['build_seconds']:.0f}"
              f"/s, 500 per transaction); export {v['export_seconds']:.1f} s, {v['export_bytes'] / 1e6:.1f} MB")
        print(f"   HTTP GET /v1/invoices/{{id}}/proof on the built ledger: {h['verified']}/{h['requests']} verified "
              f"against the last checkpoint, {h['rate']:.0f}/s (one client, sequential, a connection each)")
    if a:
        print(f"b) CompactRange.append alone: {a['compact_range_append_us']:.1f} µs/leaf; (x in it) = time inside the append")
    if p:
        print(f"c) {p['nodes']:,} nodes COPYed in {p['fill_seconds']:.0f} s" + (
            f"; pymerkle: same root as ours: {pm['same_root']}, first root {pm['first_root_seconds']:.1f} s, "
            f"{pm['cold_rate']:,.1f} proofs/s cold, then {pm['warmup_seconds']:.0f} s to warm its cache (a proof every "
            f"128 leaves)" + (f"; sqlite built in {pm['build_seconds']:.0f} s" if "build_seconds" in pm else "")
            if "rate" in pm else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k invoices, 600 seals per variant, 100k leaves, 3 s")
    parser.add_argument("--invoices", type=int, help="ledger size for the verification (default 100,000)")
    parser.add_argument("--append-seals", type=int, help="seals per variant and transaction size (default 3,000)")
    parser.add_argument("--leaves", type=int, help="size of the synthetic log for proofs (default 1,000,000)")
    parser.add_argument("--seconds", type=float, help="seconds per rate measurement (default 5)")
    parser.add_argument("--parts", default="abc", help="run only these parts (e.g. c); the saved results of the "
                        "others are kept")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/<date>.json")
    args, ignored = parser.parse_known_args(argv)  # bench/run.py passes every bench the same arguments
    if ignored:
        print(f"ignoring arguments meant for other benches: {' '.join(ignored)}")
    n = args.invoices or (10_000 if args.quick else 100_000)
    k = args.append_seals or (600 if args.quick else 3_000)
    leaves = args.leaves or (100_000 if args.quick else 1_000_000)
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    info = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **seal_bench.pg_info(), "git_commit": seal_bench.git_commit(), "invoices": n, "append_seals": k,
            "leaves": leaves, "seconds": seconds, "loadavg": [round(x, 1) for x in os.getloadavg()],
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    r: dict = {}
    # The server only answers the HTTP cross-check: its in-process workers would otherwise spend CPU
    # delivering the outbox events of the seals this process makes, and skew what is measured here.
    os.environ["STALELA_INPROCESS_WORKERS"] = "false"
    os.environ["STALELA_BACKGROUND_WORKERS"] = "0"  # nor a supervised background process (serve starts one by default)
    with seal_bench.Server(workers=1, concurrency=1) as srv:  # `stalela serve` has migrated the database
        settings = Settings(database_url=srv.dsn, data_dir=srv.tmp, demo=False)  # the server's key store too

        def phase(fn, *a):  # noqa: ANN001, ANN202 - an event loop and an engine per phase
            async def run():  # noqa: ANN202
                db = Database.from_settings(settings)
                try:
                    return await fn(db, settings, *a)
                finally:
                    await db.dispose()
            return asyncio.run(run())

        if "a" in args.parts:
            print(f"a) building a ledger of {n:,} invoices ...", flush=True)
            built = phase(build_ledger, n)
            r["build_seconds"], export = built["seconds"], Path(srv.tmp) / "audit.tar.gz"
            export_seconds = phase(export_ledger, built["tenant_id"], export)
            print("   exported; verifying ...", flush=True)
            r["verify"] = {**bench_verify(export, n, seconds), "export_seconds": export_seconds}
            r["http_proofs"] = http_proofs(srv, built["api_key"], built["tenant_id"], 200)
        if "b" in args.parts:
            print(f"b) sealing {k:,} invoices per variant (Merkle append, no-op, prototype) at 1 and 100/txn ...",
                  flush=True)
            r["append"] = phase(bench_append, k)
        if "c" in args.parts:
            print(f"c) writing a log of {leaves:,} leaves, then serving proofs ...", flush=True)
            tenant_id = phase(new_tenant, "Proof bench")[0].tenant_id
            fill_seconds, root, nodes = fill_log(srv.dsn, tenant_id, leaves)
            p = {"leaves": leaves, "fill_seconds": fill_seconds, "nodes": nodes, "root": root}
            for key, lean, procs in (("service_1x8", False, 1), ("service_2x8", False, 2), ("lean_2x8", True, 2)):
                p[key] = proofs_per_second(settings.effective_database_url, tenant_id, leaves, root, lean, procs,
                                           seconds)
            r["proofs"] = {**p, "pymerkle": pymerkle_proofs(leaves, root, seconds)}
    return finish(args, info, r)


def finish(args: argparse.Namespace, info: dict, r: dict) -> int:
    info["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
    print_table(info, r)
    if not args.no_save:
        seal_bench.RESULTS.mkdir(exist_ok=True)
        path = seal_bench.RESULTS / f"{dt.date.today().isoformat()}.json"
        data = json.loads(path.read_text()) if path.exists() else {}  # one file a day, a section per bench
        old = data.setdefault("benches", {}).get("verify", {}) if args.parts != "abc" else {}
        machines = {**old.get("machine_by_part", {}), **dict.fromkeys(args.parts, info)}
        data["benches"]["verify"] = {**old, "machine": info, "machine_by_part": machines, **r}
        path.with_suffix(".json.tmp").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        path.with_suffix(".json.tmp").replace(path)
        print(f"results written to {path.relative_to(seal_bench.ROOT)}")
    h = r.get("http_proofs", {"verified": 0, "requests": 0})
    return 0 if h["verified"] == h["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
