"""Progress a library user sees without configuring logging.

Long selections (SynFlow's rounds, GraSP's Hessian-gradient pass, the methods that train) report progress at INFO
on the ``autos`` loggers. Python drops INFO when nothing configured logging, so a user calling ``autos.prune`` from a
script would watch a silent 20-minute call. While ``visible_progress`` is active, and only when the user has set up
no logging at all (no root handler, no handler or level on ``autos``), the ``autos`` logger prints its INFO lines
to stderr; afterwards everything is as it was. A user who configured logging keeps exactly their setup.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER = "autos"


@contextlib.contextmanager
def visible_progress() -> Iterator[None]:
    """Print the ``autos`` loggers' INFO lines to stderr for the duration, unless logging was configured."""
    logger = logging.getLogger(LOGGER)
    configured = logging.getLogger().handlers or logger.handlers or logger.level != logging.NOTSET
    if configured:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
