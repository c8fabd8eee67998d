"""An emulator of Anthropic's Message Batches API, driven by the official SDK via `base_url`.

Also the synchronous Messages API (`/v1/messages`, streamed or not, and
`/v1/messages/count_tokens`), on the same validation and reply model.

    with EmulatorServer(processing_seconds=0.5) as emulator:
        client = anthropic.Anthropic(base_url=emulator.base_url, api_key="any")

See `FaultConfig` for the faults it can inject and `outcomes` for the markers
that force a request's outcome.
"""

from .admin import AdminError, BatchRecord, ClockInfo, EmulatorAdmin, Records
from .faults import ENDPOINTS, FaultConfig
from .server import MAX_BODY_BYTES, EmulatorServer

__all__ = [
    "ENDPOINTS",
    "MAX_BODY_BYTES",
    "AdminError",
    "BatchRecord",
    "ClockInfo",
    "EmulatorAdmin",
    "EmulatorServer",
    "FaultConfig",
    "Records",
]
