"""The package builds as people install it: an sdist and a wheel (``python -m build``,
the wheel built from the sdist), ``twine check --strict`` clean, one version (the one in
``tether.__version__``), the license inside, and the wheel without the C source."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import tether

ROOT = Path(__file__).resolve().parents[1]


def test_sdist_and_wheel_build_and_pass_twine_check(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = tmp_path.glob("*.whl")
    (sdist,) = tmp_path.glob("*.tar.gz")
    assert wheel.name.startswith(f"tether-{tether.__version__}-")
    assert sdist.name == f"tether-{tether.__version__}.tar.gz"
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith(".c")], "the C source is in the wheel"
    assert "tether/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"tether-{tether.__version__}.dist-info/METADATA")
    assert b"Classifier: Typing :: Typed" in metadata
    assert b"License-Expression: MIT" in metadata
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert f"tether-{tether.__version__}/src/tether/_speedups.c" in members  # builds there
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
