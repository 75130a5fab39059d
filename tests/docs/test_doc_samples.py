"""The code samples of the documentation run: each ```python block of the pages listed
here is a whole program (it starts what it needs on 127.0.0.1, asserts what the page
says, and stops); it runs in a fresh interpreter, bounded in time."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "README.md",
    "docs/topics/security.md",
    "docs/topics/operations.md",
    "docs/topics/migrating-from-python-socketio.md",
]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def samples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text()
        for n, code in enumerate(BLOCK.findall(text), 1):
            found.append((f"{page}#{n}", code))
    return found


def test_the_pages_have_samples() -> None:
    assert len(samples()) >= 7


@pytest.mark.parametrize(("where", "code"), samples(), ids=[w for w, _ in samples()])
def test_sample_runs(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "sample.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
