"""The Dockerfile and .dockerignore, checked without a Docker engine.

The last test does what the image build does (pip-install the package from the
build context .dockerignore lets through, not editable) and runs the
migrations from that install, far from the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from tests.deploy.compose_file import REPO
from tests.deploy.processes import process_env, run

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|AUTH", re.IGNORECASE)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile__builds_on_python_3_11_slim() -> None:
    bases = [args.split()[0] for word, args in instructions() if word == "FROM"]
    assert bases
    assert all(base == "python:3.11-slim" for base in bases)


def test_dockerfile__runs_as_a_non_root_user() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    words = [word for word, _ in final_stage()]
    assert words.index("USER") < words.index("CMD")
    assert "RUN" not in words[words.index("USER") :]


def test_dockerfile__installs_the_package_with_pip_from_the_repo() -> None:
    runs = [args for word, args in instructions() if word == "RUN"]
    assert any(re.search(r"\bpip install \.(\s|$)", args) for args in runs)
    assert ("COPY", ". .") in instructions()


def test_dockerfile__bakes_in_no_secret() -> None:
    for word, args in instructions():
        if word in {"ENV", "ARG", "LABEL"}:
            assert not SECRET_NAME.search(args), f"{word} {args}"
        if word in {"COPY", "ADD"}:
            assert ".env" not in args.split(), f"{word} {args}"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for keep, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            included = keep
    return included


def test_dockerignore__keeps_secrets_and_local_state_out() -> None:
    rules = dockerignore_rules()
    for path in (
        ".env",
        "deploy/env.example",
        ".venv/bin/python",
        ".git/config",
        "batchline.sqlite3",
        ".batchline/batchline.sqlite3",
        "worker/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
    ):
        assert not in_context(path, rules), path
    for path in (
        "pyproject.toml",
        "worker/cli/__init__.py",
        "worker/emulator/cli.py",
        "models/tables.py",
        "migrations/env.py",
        "migrations/versions/x.py",
    ):
        assert in_context(path, rules), path


def build_context(target: Path) -> Path:
    """Copy what `docker build .` would send: the files .dockerignore lets through."""
    rules = dockerignore_rules()
    ignore = DOCKERIGNORE.read_text().splitlines()
    for root, dirs, files in os.walk(REPO):
        base = Path(root).relative_to(REPO).as_posix()
        prefix = "" if base == "." else f"{base}/"
        # Skip excluded folders (.venv, .git, ...) unless a `!` rule reaches inside.
        dirs[:] = [
            d
            for d in dirs
            if in_context(prefix + d, rules) or any(f"!{prefix}{d}/" in line for line in ignore)
        ]
        for name in files:
            relative = prefix + name
            if in_context(relative, rules):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / relative, target / relative)
    return target


@pytest.mark.integration
def test_image_install__runs_the_migrations_away_from_the_repository(
    fresh_database: str, tmp_path: Path
) -> None:
    context = build_context(tmp_path / "context")
    assert not (context / ".env").exists()
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    pip_env = process_env()
    built = run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(context)], pip_env, tmp_path, 180
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheels.glob("batchline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.startswith("batchline/migrations/versions/") for name in names)
    assert {
        name.split("/")[0]
        for name in names
        if "/" in name and not name.split("/")[0].endswith((".dist-info", ".data"))
    } == {"batchline"}
    installed = run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], pip_env, tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    # The wheel's modules come first; the venv gives the dependencies only.
    env = process_env({"PYTHONPATH": str(site), "BATCHLINE_DATABASE_URL": fresh_database})
    where = run(
        [sys.executable, "-c", "import batchline; print(batchline.__file__)"], env, tmp_path
    )
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    batchline = [sys.executable, str(site / "bin" / "batchline")]
    upgraded = run([*batchline, "db", "upgrade"], env, tmp_path)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert run([*batchline, "emulator", "--help"], env, tmp_path).returncode == 0
    engine = create_engine(fresh_database)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
