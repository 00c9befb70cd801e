"""Fixtures shared by every test layer. Gateway fixtures live in tests/integration/conftest.py.

pytest-django provides `db`, `client`, `admin_user` and `admin_client` (a superuser of our
custom User model, logged in); they are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import connection


@pytest.fixture
def database_text(db: None) -> Callable[[], str]:
    """Every value in every table, as one string: what someone holding a copy of the
    database would see. Works on SQLite (in-memory test database) and PostgreSQL."""

    def dump() -> str:
        values: list[str] = []
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names(cursor):
                cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
                values.extend(str(value) for row in cursor.fetchall() for value in row)
        return "\n".join(values)

    return dump


@pytest.fixture(scope="session", autouse=True)
def end_gateway_connections(django_db_setup: None, django_db_blocker) -> Iterator[None]:
    """The gateway's threads (event writer, executor) keep their PostgreSQL connections
    open, as they should in production; end them before the test database is dropped."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
