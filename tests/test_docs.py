"""The documentation site builds without a warning (mkdocs --strict: a docstring that
mkdocstrings cannot parse, a broken link or a page missing from the navigation fails it)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_documentation_builds_strictly(tmp_path):
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
               str(tmp_path / "site")]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for page in ("index.html", "own-model/index.html", "cli/index.html",
                 "api/training/index.html", "api/objectives/index.html"):  # fmt: skip
        assert (tmp_path / "site" / page).stat().st_size > 1000, page
    assert (
        "Train <code>model</code> on <code>data</code>"
        in (tmp_path / "site" / "api" / "training" / "index.html").read_text()
    )
