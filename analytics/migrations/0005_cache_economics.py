"""The prompt cache's economics on `Call` and every rollup: 1-hour cache writes and the
cache's money (analytics.pricing.CacheCosts).

Each column is added by a plain ALTER TABLE … ADD COLUMN … DEFAULT 0 NOT NULL: a change of
the catalog alone on SQLite and PostgreSQL alike, where Django's AddField rebuilds a SQLite
table once per column (thirty copies of every rollup). Rows from before read 0: run
`metis manage rebuild_rollups` to fill the 1-hour writes in from the events.
"""

from django.db import migrations, models

import analytics.models

TABLES = ("call", "callhour", "callday", "keyday", "modelhour", "modelday")
COLUMNS = (
    ("cache_write_1h_tokens", models.BigIntegerField),
    ("cache_write_5m_usd", analytics.models.MoneyField),
    ("cache_write_1h_usd", analytics.models.MoneyField),
    ("cache_saved_usd", analytics.models.MoneyField),
    ("cache_write_premium_usd", analytics.models.MoneyField),
)


def add(model: str, name: str, kind: type) -> migrations.SeparateDatabaseAndState:
    table = f"analytics_{model}"
    return migrations.SeparateDatabaseAndState(
        database_operations=[
            migrations.RunSQL(
                f'ALTER TABLE "{table}" ADD COLUMN "{name}" bigint DEFAULT 0 NOT NULL',
                f'ALTER TABLE "{table}" DROP COLUMN "{name}"',
            )
        ],
        state_operations=[
            migrations.AddField(
                model_name=model, name=name, field=kind(db_default=0, default=0)
            )
        ],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0004_narrow_rollups"),
    ]

    operations = [add(model, name, kind) for model in TABLES for name, kind in COLUMNS]
