"""The systemd units the deployment guide installs are ones systemd accepts as written:
every key known (a misspelt hardening option would be silently ignored), every path used."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


def test_the_guide_names_both_units():
    assert {u.name for u in UNITS} == {"metis-gateway.service", "metis-serve.service"}
    guide = (REPO / "docs" / "deployment.md").read_text()
    assert all(f"deploy/systemd/{u.name}" in guide for u in UNITS)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_verifies_the_unit_without_a_warning(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: apt-get install systemd")
        pytest.skip("systemd-analyze is missing: apt-get install systemd")
    metis = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "metis"
    # This checkout stands in for /opt/metis, the example env file for /etc/metis/metis.env.
    text = unit.read_text().replace("/opt/metis/.venv/bin/metis", str(metis))
    text = text.replace("/etc/metis/metis.env", str(REPO / "deploy" / "metis.env.example"))
    text = text.replace("/opt/metis", str(REPO))
    local = tmp_path / unit.name
    local.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
