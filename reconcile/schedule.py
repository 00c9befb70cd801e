"""`metis serve` reconciles once a day on its own, as it prunes (analytics.retention)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.db import connection

from reconcile import imports, sources

logger = logging.getLogger(__name__)

EVERY = timedelta(days=1)


def schedule(every: timedelta = EVERY) -> threading.Thread | None:
    """Reconcile now and then once a day, in a daemon thread; no thread when no admin key
    is configured (checked again at each run, so a key added in the admin is picked up)."""
    if not sources.configured():
        return None

    def run() -> None:
        while True:
            try:
                if sources.configured():
                    # Whole days only: today's report is still filling in, and would
                    # read as unreported traffic and drift that the next hours take back.
                    outcome = imports.run(until=imports.today())
                    logger.info(
                        "reconciled %s to %s: %d reports, %d rows, %d errors",
                        outcome.since, outcome.until, outcome.reports, outcome.rows,
                        len(outcome.errors),
                    )  # fmt: skip
            except Exception:  # a provider or the database down: try again tomorrow
                logger.exception("reconciliation failed")
            finally:
                connection.close()
            time.sleep(every.total_seconds())

    thread = threading.Thread(target=run, name="metis-reconcile", daemon=True)
    thread.start()
    return thread
