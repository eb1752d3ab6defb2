"""The README's "Use" snippet runs as written, with FutureWarnings as errors (its write_h5ad included)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use", 1)[1]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_readme_use_snippet_runs_with_future_warnings_as_errors(tmp_path):
    code = "import matplotlib\nmatplotlib.use('Agg')\n" + use_snippet()
    assert "write_h5ad" in code and "mmc.tl.annotate" in code
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out.h5ad").is_file() and (tmp_path / "my_model" / "modules.json").is_file()
