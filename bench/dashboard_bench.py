"""How long the dashboard's pages take on the server over the analytics bench database.

    uv run python bench/dashboard_bench.py --home DIR [--runs 5] [--as USERNAME]
    uv run python bench/dashboard_bench.py --database-url postgres://postgres@127.0.0.1:5432/metis_bench10m

DIR is a METIS_HOME filled by `bench/analytics_bench.py --home DIR` (1,000,000 calls over
30 days); the PostgreSQL database one filled by `bench/analytics_bench.py --database-url`
(10,000,000 calls over a year, 2,000 keys, 500 users, 50 teams and their quotas: the
Cost tab's budget strip shows them all). Renders each tab in-process (Django's test
client, local mode), once untimed, and prints the p50 of several runs: server time only,
no network and no browser. With --as, the pages are rendered for that (existing) user,
signed in, instead of local mode (on PostgreSQL, dev-000 is team-00's budget owner).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [
    "/dashboard/",
    "/dashboard/?window=24h",
    "/dashboard/?window=7d",
    "/dashboard/?window=30d",
    "/dashboard/?window=this_month",
    "/dashboard/?window=last_month",
    "/dashboard/?tab=identity",
    "/dashboard/?tab=identity&window=30d",
    "/dashboard/?tab=identity&window=this_month&view=key&sort=budget",
    "/dashboard/?tab=activity",
    "/dashboard/?tab=activity&window=30d",
    "/dashboard/?tab=activity&window=30d&page=20",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--database-url", help="postgres://… filled by analytics_bench.py")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--as", dest="username", help="render for this user, signed in")
    args = parser.parse_args()
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
        args.home = args.home or Path(tempfile.mkdtemp(prefix="metis-dashboard-bench-"))
    elif args.home is None or not (args.home / "metis.db").exists():
        print("give --database-url, or --home DIR filled by bench/analytics_bench.py --home")
        return 2
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.update(METIS_HOME=str(args.home), METIS_LOCAL_MODE="" if args.username else "1")
    os.environ.setdefault("METIS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis_site.settings")
    import django

    django.setup()
    from django.test import Client

    from metis_site.asgi import settle

    settle()  # as `metis serve` at startup (see analytics_bench.time_endpoints)
    client = Client(SERVER_NAME="127.0.0.1")
    if args.username:
        from identity.models import User

        client.force_login(User.objects.get(username=args.username))
    print(f"p50 of {args.runs} runs per page, server time, warm:")
    for url in PAGES:
        assert client.get(url).status_code == 200, url
        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        print(f"  {statistics.median(timings):8.1f} ms  {url}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
