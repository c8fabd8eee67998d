"""The one settings object: environment in, every child process out, README in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batchline.local import child_env
from batchline.settings import Settings, SettingsError, variable_name

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_variables() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("| variable | default | meaning |") :]
    rows = section[: section.index("\n\n")].splitlines()[2:]
    return {name for row in rows for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])}


def test_settings__readme_table_lists_every_field_and_nothing_else() -> None:
    fields = {variable_name(name) for name in Settings.model_fields}
    assert _readme_variables() == fields


def test_child_env__carries_every_setting_including_log_format_and_prices_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHLINE_STALE_THING", "from the parent")
    prices = tmp_path / "prices.toml"
    settings = Settings(
        log_format="text",
        prices_file=str(prices),
        celery_queue="bl-elsewhere",
        flower_url="http://127.0.0.1:5555",
        intake_interval_seconds=0.25,
        api_key="k",
        base_url="http://127.0.0.1:1",
    )
    env = child_env(settings)
    assert env["BATCHLINE_LOG_FORMAT"] == "text"
    assert env["BATCHLINE_PRICES_FILE"] == str(prices)
    assert "BATCHLINE_STALE_THING" not in env
    # Every field travels: the child reads back the very same settings.
    assert {
        variable_name(n) for n in Settings.model_fields if getattr(settings, n) is not None
    } <= set(env)
    assert Settings.from_env(env) == settings


def test_settings__direct_construction_reads_no_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BATCHLINE_MAX_ATTEMPTS", "9")
    assert Settings().max_attempts == 3
    assert Settings.from_env().max_attempts == 9


def test_settings__configured_tells_a_set_variable_from_a_default() -> None:
    settings = Settings.from_env({"BATCHLINE_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert settings.configured("redis_url") and not settings.configured("database_url")
    changed = settings.replace(max_wait_seconds=2)
    assert changed.configured("redis_url") and not changed.configured("database_url")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BATCHLINE_LOG_FORMAT": "xml"}, "BATCHLINE_LOG_FORMAT"),
        ({"BATCHLINE_CELERY_QUEUE": "batchline-callbacks"}, "BATCHLINE_CELERY_QUEUE"),
        ({"BATCHLINE_INGEST_CHUNK": "many"}, "BATCHLINE_INGEST_CHUNK"),
    ],
)
def test_settings__bad_value_is_one_line_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named) as caught:
        Settings.from_env(env)
    assert "\n" not in str(caught.value)


def test_settings__empty_variables_mean_unset() -> None:
    settings = Settings.from_env({"BATCHLINE_PRICES_FILE": "", "ANTHROPIC_BASE_URL": ""})
    assert settings.prices_file is None and settings.base_url is None


def test_public_api__typed_keywords_docstrings_and_version() -> None:
    import inspect
    from importlib.metadata import version

    import batchline

    assert batchline.__version__ == version("batchline")
    for name in ("enqueue", "aenqueue", "enqueue_many"):
        function = getattr(batchline, name)
        kinds = {p.kind for p in inspect.signature(function).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, name
    for name in batchline.__all__:
        if name != "__version__" and name != "app":
            assert inspect.getdoc(getattr(batchline, name)), f"{name} has no docstring"
