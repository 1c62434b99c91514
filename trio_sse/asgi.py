"""The entry for Hypercorn's own CLI: ``hypercorn -k trio trio_sse.asgi:app``.

``app`` is built at import from ``TRIO_SSE_*`` environment variables (``config.settings_from_env``)
and runs the monitors and the write watchdog in its own lifespan; see ``app._standalone`` for
what it shares with ``trio-sse serve`` and what only ``serve`` can do (the README lists the
differences). A bad setting stops the worker with one line on stderr, not a traceback. The
older spelling ``hypercorn -k trio 'trio_sse.app:create_app()'`` builds the same app.
"""

from __future__ import annotations

import sys

from trio_sse.app import create_app
from trio_sse.errors import ConfigError

try:
    app = create_app()
except ConfigError as _err:
    print(f"trio_sse.asgi: error: {_err}", file=sys.stderr)
    raise SystemExit(2) from None

__all__ = ["app"]
