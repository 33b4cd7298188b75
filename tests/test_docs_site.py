"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing
page in nav or an API name mkdocstrings cannot resolve fails it. Needs the packages of
docs/requirements.txt."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None
    or importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="mkdocs and mkdocstrings are not installed (pip install -r docs/requirements.txt)",
)


@pytest.mark.timeout(300)
def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    # mkdocstrings rendered the public names, not an empty page
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("undipy.Client", "undipy.interceptors.retry.retry", "undipy.diagnostics.subscribe",
                 "undipy.contrib.opentelemetry.UndipyInstrumentor"):  # fmt: skip
        assert f'id="{name}"' in api, name
    # every guide made it into the site
    for page in (ROOT / "docs" / "guide").glob("*.md"):
        assert (site / "guide" / page.stem / "index.html").exists(), page.name
