"""``stalela verify-erasure`` (offline check of a signed erasure receipt) and ``stalela privacy replay-journal``."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from stalela.cli.output import EXIT_FAILED, EXIT_USAGE, emit, err, out, usage

privacy_app = typer.Typer(help="Data subjects' requests: the erasure journal.", no_args_is_help=True)


def verify_erasure(
    receipt: Path = typer.Argument(..., help="The receipt JSON (GET /v1/privacy/erasure-requests/{id} → receipt)"),
    jwk: Optional[Path] = typer.Option(None, "--jwk", help="The tenant's public key as a JWK (GET /v1/keys/{key_id})"),
    url: Optional[str] = typer.Option(None, "--url", help="Fetch the key from this Stalela (base URL) instead"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a receipt's ES256 signature and that the ledger's Merkle root did not change. Exit 0 valid, 1 invalid, 2 unusable."""
    from stalela.privacy.receipts import check_receipt

    try:
        document = json.loads(receipt.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "receipt" in document and "payload" not in document:
            document = document["receipt"]  # the whole GET answer was saved
        if jwk is not None:
            key = json.loads(jwk.read_text(encoding="utf-8"))
        elif url:
            import httpx

            key = httpx.get(f"{url.rstrip('/')}/v1/keys/{document['key_id']}", timeout=10).raise_for_status().json()
        else:
            usage("give --jwk KEY.json or --url")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        err.print(f"[red]unusable[/red] {escape(f'{type(exc).__name__}: {exc}')}")
        raise typer.Exit(EXIT_USAGE) from None
    problems = check_receipt(document, key)
    if as_json:
        emit({"valid": not problems, "problems": problems, "payload": document.get("payload")}, True)
    elif problems:
        for p in problems:
            out.print(f"[red]invalid[/red] {escape(str(p))}")
    else:
        payload = document["payload"]
        out.print(f"[green]valid[/green] erasure {payload['request_id']} of {payload['subject'][:16]}… "
                  f"completed {payload['completed_at']}; ledger root {payload['merkle_root_after']} unchanged")
    if problems:
        raise typer.Exit(EXIT_FAILED)


@privacy_app.command("replay-journal")
def replay_journal(as_json: bool = typer.Option(False, "--json")) -> None:
    """Re-apply every erasure of the journal to the database (after restoring a backup)."""
    from stalela.config import get_settings
    from stalela.db.session import Database
    from stalela.privacy.erasure_service import replay_journal as replay

    settings = get_settings()

    async def run() -> int:
        db = Database.from_settings(settings)
        try:
            return await replay(db, settings)
        finally:
            await db.dispose()

    count = asyncio.run(run())
    emit({"reapplied": count}, as_json, f"re-applied {count} journal entries")
