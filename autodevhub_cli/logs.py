"""Where autodevhub's own log goes; shared by the Typer app and the console script's fast path."""

from __future__ import annotations

import logging
import os
import sys


def configure_logging() -> None:
    """autodevhub's own log (every engine, registry, Compose and API call) goes to stderr with
    AUTODEVHUB_DEBUG=1 and nowhere else: never into stdout, whatever the host process set up."""
    logger = logging.getLogger("autodevhub")
    logger.propagate = False
    if logger.handlers:
        return
    if os.environ.get("AUTODEVHUB_DEBUG") == "1":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)
