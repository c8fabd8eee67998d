"""Reading docker-compose.yml and deploy/env.example as Compose does, without Docker.

Compose loads the YAML (anchors and `<<` merges included), then fills every
`${VAR}` from the project's `.env`; a container's environment is its
`env_file` overlaid by its `environment`. These helpers do the same, so the
tests see the configuration a real `docker compose up` would run.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_PATH = REPO / "docker-compose.yml"
ENV_EXAMPLE_PATH = REPO / "deploy" / "env.example"
SCHEMA_PATH = Path(__file__).with_name("compose_spec.json")

# $$ | ${NAME} | ${NAME<op><arg>} | $NAME, as in the Compose Specification.
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_ENV_LINE = re.compile(r"^(?P<comment>#)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


class MissingVariable(LookupError):
    """A `${VAR:?message}` whose variable is unset (or empty): compose refuses to run."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def raw_text() -> str:
    return COMPOSE_PATH.read_text()


def load_raw() -> dict[str, Any]:
    data = yaml.safe_load(raw_text())
    assert isinstance(data, dict)
    return data


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _REFERENCE.sub(lambda m: _substitute(m, env), value)
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return value


def _substitute(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["braced"] or match["bare"]
    op, arg = match["op"] or "", match["arg"] or ""
    is_set, value = name in env, env.get(name, "")
    present = bool(value) if op.startswith(":") else is_set
    if op.endswith("?"):
        if not present:
            raise MissingVariable(name, arg)
        return value
    if op.endswith("-"):
        return value if present else arg
    if op.endswith("+"):
        return arg if present else ""
    return value


def load(env: Mapping[str, str]) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with this `.env`."""
    data = interpolate(load_raw(), env)
    assert isinstance(data, dict)
    return data


def references(text: str) -> dict[str, str]:
    """Every variable the text refers to, with its operator ('' when bare)."""
    found: dict[str, str] = {}
    for match in _REFERENCE.finditer(text):
        name = match["braced"] or match["bare"]
        if name:
            found.setdefault(name, match["op"] or "")
    return found


def env_example() -> tuple[dict[str, str], set[str]]:
    """deploy/env.example: (active NAME=value lines, names on commented-out lines)."""
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE_PATH.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match is None:
            continue
        if match["comment"]:
            commented.add(match["name"])
        else:
            active[match["name"]] = match["value"]
    return active, commented


def sample_env() -> dict[str, str]:
    """A filled-in `.env`: env.example with every empty value given a fresh test value."""
    active, _ = env_example()
    filled = {}
    for name, value in active.items():
        token = secrets.token_hex(12)
        filled[name] = value or (f"deploy-test:{token}" if name.endswith("_AUTH") else token)
    return filled


def container_env(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """A container's environment: its env_file (here always `.env`) overlaid by `environment`."""
    env: dict[str, str] = {}
    env_files = service.get("env_file") or []
    for path in [env_files] if isinstance(env_files, str) else env_files:
        assert path == ".env", f"unexpected env_file {path!r}"
        env.update(dotenv)
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "use the mapping form of `environment`"
    env.update({key: "" if value is None else str(value) for key, value in environment.items()})
    return env


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    """The health check as the container runtime runs it (CMD-SHELL goes through sh)."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["sh", "-c", " ".join(rest)]
    assert kind == "CMD", f"unexpected health check form {kind!r}"
    return list(rest)
