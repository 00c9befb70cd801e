"""Loaded by pytest before Django reads its settings (`-p tests.environment` in
pyproject), so a test run never touches the user's ~/.metis."""

from __future__ import annotations

import os
import tempfile

os.environ["METIS_HOME"] = tempfile.mkdtemp(prefix="metis-test-")
os.environ.setdefault("METIS_LOG_LEVEL", "WARNING")
# Tests point the gateway at the mock provider; never at a real one by accident.
for name in ("METIS_ANTHROPIC_API_KEY", "METIS_OPENAI_API_KEY"):
    os.environ.pop(name, None)
