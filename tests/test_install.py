"""A non-editable install maps kernels/ and recipes/ into the detrun package."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_non_editable_install_imports_kernels_and_recipes(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    code = (
        "import detrun, detrun.kernels, detrun.recipes, detrun.config;"
        "print(detrun.kernels.__file__); print(detrun.recipes.__file__);"
        "print(len(detrun.config.list_recipes()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=tmp_path, env=env).stdout.split()
    assert out[0].startswith(str(target)) and out[1].startswith(str(target))
    assert int(out[2]) > 0
