"""Where settings come from: the environment, or any mapping standing in for it.

pydantic-settings' environment source reads os.environ; this one reads a given
mapping, so tests and child processes can be described without touching the
process's own environment. The SDK's variables (ANTHROPIC_API_KEY,
ANTHROPIC_BASE_URL) are read as the SDK reads them: empty means unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource

ENV_PREFIX = "BATCHLINE_"
# Settings fields read from the SDK's own variables rather than BATCHLINE_*.
SDK_VARIABLES = {"api_key": "ANTHROPIC_API_KEY", "base_url": "ANTHROPIC_BASE_URL"}


class MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, so tests and
    child processes can be described without touching os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            k.lower(): v
            for k, v in self._environ.items()
            if v and (k.startswith(ENV_PREFIX) or k in SDK_VARIABLES.values())
        }

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        # The SDK variables, empty meaning unset (as the SDK reads them).
        for field, var in SDK_VARIABLES.items():
            values.pop(field, None)
            raw = self._environ.get(var)
            if raw:
                values[field] = raw
        return values
