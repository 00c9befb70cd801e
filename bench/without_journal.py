"""`metis gateway` with its call journal off, for bench/gateway_bench.py only.

    uv run python bench/without_journal.py gateway --port 8081

A bench shows what the journal costs by running without it; no setting turns it off in
the product, because a gateway without it loses the calls in flight to a `kill -9`.
Nothing is appended to the files: events go to the in-process writer, the journal's
fallback when it cannot be written (the bench also sets METIS_EVENT_WRITER_PROCESS=0).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from metis_site import cli

setup_django = cli.setup_django


def setup_without_journal(*, migrate: bool = True) -> None:
    setup_django(migrate=migrate)
    from gateway.journal import journal

    journal._append = lambda line: None  # every record "could not be written": none is


if __name__ == "__main__":
    cli.setup_django = setup_without_journal
    sys.exit(cli.main(sys.argv[1:]))
