"""Serving an ASGI app (the dashboard, the HTTP intake) with uvicorn, as a service should."""

from __future__ import annotations

import signal
from typing import Any


def serve_app(app: Any, host: str, port: int) -> None:
    """Run `app` until SIGTERM or SIGINT, then exit 0.

    uvicorn shuts down gracefully on either signal and then re-raises it to the
    handler that was there before it; a no-op one makes that a clean exit 0, so
    a supervisor (compose, systemd) sees a stop, not a crash.
    """
    import uvicorn

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
