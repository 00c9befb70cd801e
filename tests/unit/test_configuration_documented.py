"""Every environment variable the code reads is in the README's configuration (the one
table docs/deployment.md links to), so the table cannot fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READS = re.compile(
    r"""(?:environ(?:\.get)?\(|environ\[|getenv\(|env(?:bool|int|float|secret|header)\()\s*"""
    r"""["']([A-Z][A-Z0-9_]+)["']"""
)
# Set by the `metis` command for the process it starts, never by an operator.
INTERNAL = {"METIS_ROLE", "METIS_LOCAL_MODE", "DJANGO_SETTINGS_MODULE"}


def variables_read() -> set[str]:
    names = set()
    for package in ("analytics", "gateway", "identity", "metis_site"):
        for module in (REPO / package).rglob("*.py"):
            names.update(READS.findall(module.read_text()))
    return names - INTERNAL


def test_every_variable_the_code_reads_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    found = variables_read()
    assert "METIS_HOME" in found and "REDIS_URL" in found  # the scan itself works
    missing = sorted(name for name in found if f"`{name}`" not in readme)
    assert not missing, f"add these to the README's Configuration table: {missing}"


def test_the_variables_set_by_the_command_itself_are_named_in_the_guide():
    guide = (REPO / "docs" / "deployment.md").read_text()
    assert "`METIS_ROLE`" in guide and "`METIS_LOCAL_MODE`" in guide
