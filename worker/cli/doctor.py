"""`batchline doctor`: check a live setup and say what is wrong and how to fix it."""

from __future__ import annotations

import click

from batchline.cli.shared import friendly_errors, load_settings
from batchline.doctor import run_checks


@click.command()
@friendly_errors
def doctor() -> None:
    """Check Redis, the database, the API key and the clock; exit 1 on problems."""
    findings = run_checks(load_settings())
    failed = False
    for finding in findings:
        mark = "ok  " if finding.ok else ("warn" if finding.warning else "FAIL")
        click.echo(f"[{mark}] {finding.what}" + (f" -> {finding.fix}" if finding.fix else ""))
        failed = failed or (not finding.ok and not finding.warning)
    if failed:
        raise SystemExit(1)
