"""The one-way import rules of ARCHITECTURE.md hold: `lint-imports` keeps every
contract in pyproject.toml ([tool.importlinter])."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
RULES = {
    "the domain is pure: no I/O, no outer layer",
    "adapters serve the services and never call them",
    "services know nothing of the tasks or the CLI that call them",
    "no import cycles in batchline",
}


def _lint(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_architecture__every_import_contract_is_kept() -> None:
    done = _lint(ROOT / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(RULES)} kept, 0 broken." in done.stdout


def test_architecture__the_rules_are_all_there() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert {c["name"] for c in config["contracts"]} == RULES


def test_architecture__a_broken_rule_fails_the_check(tmp_path: Path) -> None:
    # Every command module reads the settings: forbidding that must fail.
    config = tmp_path / "broken.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "batchline"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "a rule the code breaks"\ntype = "forbidden"\n'
        'source_modules = ["batchline.cli"]\nforbidden_modules = ["batchline.settings"]\n'
    )
    done = _lint(config)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout
