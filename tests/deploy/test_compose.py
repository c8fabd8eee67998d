"""docker-compose.yml: valid Compose, and the properties the deployment relies on.

The schema is the Compose Specification's JSON schema vendored from the PyPI
package docker-compose 1.29.2 (see README.md here). Nothing here needs Docker.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from batchline.settings import Settings
from tests.deploy import compose_file
from tests.deploy.compose_file import MissingVariable

SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
APP = ["celery", "-A", "batchline"]
BATCHLINE_SERVICES = ("migrate", "worker", "beat", "intake")
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH", "DASHBOARD_BASIC_AUTH")
# A reference that makes compose refuse to run without the value: ${VAR:?why} or ${VAR?why}.
REQUIRED_REFERENCE = re.compile(r"\$\{[A-Z_][A-Z0-9_]*:?\?[^}]*\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|AUTH")


def schema_validator() -> jsonschema.Draft201909Validator:
    schema = json.loads(compose_file.SCHEMA_PATH.read_text())
    # The file names draft 2019-09 by an old spelling of its URI
    # ("http://...schema#"), which jsonschema does not map by itself.
    assert schema["$schema"] == "http://json-schema.org/draft/2019-09/schema#"
    cls = jsonschema.Draft201909Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_schema__is_the_vendored_file_unchanged() -> None:
    digest = hashlib.sha256(compose_file.SCHEMA_PATH.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_compose__matches_the_compose_spec_schema(dotenv: dict[str, str], offline: bool) -> None:
    env = dict(dotenv)
    if offline:
        env |= {"COMPOSE_PROFILES": "offline", "ANTHROPIC_BASE_URL": "http://emulator:8765"}
    errors = sorted(schema_validator().iter_errors(compose_file.load(env)), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema__rejects_what_compose_rejects(config: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(config))
    broken["services"]["migrate"]["restart"] = False  # an unquoted `no` in YAML
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_done"
    assert len(list(schema_validator().iter_errors(broken))) == 2


@pytest.mark.parametrize("secret", SECRETS)
def test_compose__refuses_to_run_without_each_secret(dotenv: dict[str, str], secret: str) -> None:
    env = {name: value for name, value in dotenv.items() if name != secret}
    with pytest.raises(MissingVariable) as missing:
        compose_file.load(env)
    assert missing.value.name == secret
    assert "deploy/env.example" in str(missing.value)


def test_env_example__documents_every_variable_the_compose_file_reads() -> None:
    active, commented = compose_file.env_example()
    referenced = compose_file.references(compose_file.raw_text())
    undocumented = set(referenced) - set(active) - commented
    assert not undocumented
    required = {name for name, op in referenced.items() if op.endswith("?")}
    assert required == set(SECRETS)
    assert required <= set(active)


def test_env_example__ships_no_secret_values() -> None:
    active, _ = compose_file.env_example()
    filled = {name: value for name, value in active.items() if SECRET_NAME.search(name) and value}
    assert not filled


def test_compose__holds_no_literal_secrets(raw_services: dict[str, dict[str, Any]]) -> None:
    text = compose_file.raw_text()
    assert not re.search(r"sk-ant|ANTHROPIC_API_KEY\s*[:=]", text)
    for name, service in raw_services.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_REFERENCE.fullmatch(str(value)), f"{name}.{key} = {value!r}"
    for url in re.findall(r"[a-z+]+://[^\s\"']*", text):
        password = urlsplit(url).password
        assert password is None or password.startswith("${"), url


def test_batchline_services__read_settings_from_the_env_file(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    for name in BATCHLINE_SERVICES:
        assert raw_services[name]["env_file"] == ".env", name
    # Flower and the emulator need no API key, so they never get the env file.
    for name in ("flower", "dashboard", "emulator", "redis", "postgres"):
        assert "env_file" not in raw_services[name], name
        assert "ANTHROPIC_API_KEY" not in (raw_services[name].get("environment") or {})


def test_service_urls__agree_with_the_datastores(
    services: dict[str, dict[str, Any]], dotenv: dict[str, str]
) -> None:
    postgres = services["postgres"]["environment"]
    redis_password = _option(services["redis"]["command"], "--requirepass")
    for name in (*BATCHLINE_SERVICES, "flower", "dashboard"):
        env = compose_file.container_env(services[name], dotenv)
        settings = Settings.from_env(env)
        broker = urlsplit(settings.redis_url)
        assert (broker.hostname, broker.port, broker.password) == ("redis", 6379, redis_password)
        if name == "flower":
            continue
        db = urlsplit(settings.database_url)
        assert db.scheme == "postgresql+psycopg"
        assert (db.hostname, db.port) == ("postgres", 5432)
        assert db.username == postgres["POSTGRES_USER"]
        assert db.password == postgres["POSTGRES_PASSWORD"]
        assert db.path == f"/{postgres['POSTGRES_DB']}"


def _option(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def test_redis__is_durable_evicts_nothing_and_needs_a_password(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    redis = raw_services["redis"]
    argv = redis["command"]
    assert argv[0] == "redis-server"
    assert _option(argv, "--appendonly") == "yes"
    assert _option(argv, "--maxmemory-policy") == "noeviction"
    assert REQUIRED_REFERENCE.fullmatch(_option(argv, "--requirepass"))
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_datastores__are_not_published_on_the_host(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    for name in ("redis", "postgres"):
        assert "ports" not in raw_services[name], name
        assert raw_services[name].get("network_mode") != "host", name
    assert any(v.startswith("postgres-data:") for v in raw_services["postgres"]["volumes"])
    assert {"redis-data", "postgres-data"} <= set(compose_file.load_raw()["volumes"])


def test_worker__runs_the_worker_command_and_scales(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    worker = raw_services["worker"]
    assert worker["command"][:5] == [*APP, "worker", "--loglevel=INFO"]
    assert "ports" not in worker
    assert "replicas" not in (worker.get("deploy") or {})
    for name, service in raw_services.items():
        assert "container_name" not in service, name
        assert "hostname" not in service, name


def test_beat__runs_exactly_once(raw_services: dict[str, dict[str, Any]]) -> None:
    beat = raw_services["beat"]
    assert beat["command"] == [*APP, "beat", "--loglevel=INFO"]
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1
    runs_beat = [name for name, s in raw_services.items() if "beat" in (s.get("command") or [])]
    assert runs_beat == ["beat"]


def test_flower__requires_basic_auth_and_listens_on_loopback_only(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    flower = raw_services["flower"]
    assert flower["command"][:4] == [*APP, "flower"]
    env = flower["environment"]
    assert REQUIRED_REFERENCE.fullmatch(env["FLOWER_BASIC_AUTH"])
    assert "FLOWER_UNAUTHENTICATED_API" not in env
    assert not any(arg.startswith("--basic-auth") for arg in flower["command"])
    assert [p for p in flower["ports"] if not p.startswith("127.0.0.1:")] == []


def test_worker__consumes_only_batchline_queue(raw_services: dict[str, dict[str, Any]]) -> None:
    from batchline.celery_app import app

    command = compose_file.interpolate(raw_services["worker"]["command"], {})
    queue = command[command.index("-Q") + 1]
    assert queue == app.conf.task_default_queue == "batchline"
    assert (
        compose_file.interpolate(
            raw_services["worker"]["command"], {"BATCHLINE_CELERY_QUEUE": "bl2"}
        )[command.index("-Q") + 1]
        == "bl2"
    )


def test_dashboard__requires_basic_auth_and_listens_on_loopback_only(
    raw_services: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    dashboard = raw_services["dashboard"]
    assert dashboard["command"][:2] == ["batchline", "dashboard"]
    assert REQUIRED_REFERENCE.fullmatch(dashboard["environment"]["BATCHLINE_DASHBOARD_BASIC_AUTH"])
    assert [p for p in dashboard["ports"] if not p.startswith("127.0.0.1:")] == []
    # The login reaches the container as the setting the dashboard reads.
    env = compose_file.container_env(services["dashboard"], compose_file.sample_env())
    assert Settings.from_env(env).dashboard_basic_auth.startswith("deploy-test:")


def test_worker__sends_task_events_for_flower(raw_services: dict[str, dict[str, Any]]) -> None:
    from batchline.celery_app import app

    assert "--task-events" in raw_services["worker"]["command"]
    assert app.conf.worker_send_task_events
    assert app.conf.task_send_sent_event


def test_emulator__runs_only_under_the_offline_profile(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    emulator = raw_services["emulator"]
    assert emulator["profiles"] == ["offline"]
    assert emulator["command"][:2] == ["batchline", "emulator"]
    assert _option(emulator["command"], "--host") == "0.0.0.0"
    assert _option(emulator["command"], "--port") == "8765"
    assert "ports" not in emulator
    in_profiles = [name for name, s in raw_services.items() if "profiles" in s]
    assert in_profiles == ["intake", "emulator"]


def test_intake__runs_serve_under_the_http_profile_on_loopback(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    intake = raw_services["intake"]
    assert intake["profiles"] == ["http"]
    assert intake["command"] == ["batchline", "serve", "--bind", "0.0.0.0:8080"]
    assert intake["ports"] == ["127.0.0.1:${HOST_INTAKE_PORT:-8080}:8080"]


def test_services__start_in_dependency_order(services: dict[str, dict[str, Any]]) -> None:
    healthy, done = "service_healthy", "service_completed_successfully"
    expected = {
        "migrate": {"postgres": healthy},
        "worker": {"redis": healthy, "postgres": healthy, "migrate": done},
        "beat": {"redis": healthy, "postgres": healthy, "migrate": done},
        "flower": {"redis": healthy},
        "intake": {"redis": healthy, "postgres": healthy, "migrate": done},
        "dashboard": {"redis": healthy, "postgres": healthy, "migrate": done},
    }
    for name, wanted in expected.items():
        got = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert got == wanted, name
    assert services["migrate"]["restart"] == "no"
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            if spec["condition"] == healthy:
                assert "healthcheck" in services[dep], f"{name} waits on {dep}'s health check"


def test_healthchecks__use_commands_their_images_have(
    services: dict[str, dict[str, Any]],
) -> None:
    first_word = {
        "redis": "redis-cli",
        "postgres": "pg_isready",
        "worker": "celery",
        "flower": "python",
        "dashboard": "python",
        "emulator": "python",
        "intake": "python",
    }
    for name, command in first_word.items():
        argv = compose_file.healthcheck_argv(services[name])
        script = argv[2] if argv[:2] == ["sh", "-c"] else " ".join(argv)
        assert script.split()[0] == command, name
    worker_check = compose_file.healthcheck_argv(services["worker"])[2]
    assert "inspect ping" in worker_check
    assert '--destination "celery@$HOSTNAME"' in worker_check


def test_images__build_once_from_this_repository(
    raw_services: dict[str, dict[str, Any]],
) -> None:
    ours = [name for name, s in raw_services.items() if "build" in s]
    assert sorted(ours) == sorted([*BATCHLINE_SERVICES, "flower", "dashboard", "emulator"])
    assert {raw_services[name]["image"] for name in ours} == {
        "batchline:${BATCHLINE_IMAGE_TAG:-local}"
    }
    assert all(raw_services[name]["build"] == "." for name in ours)
