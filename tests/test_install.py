"""A non-editable install maps kernels/ and recipes/ into the detrun package."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What setup.py and pyproject.toml read; the build runs on a copy, because setuptools writes
# build/ and detrun.egg-info/ next to the sources and the test must leave the checkout clean.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "src", "kernels", "recipes")


def test_non_editable_install_imports_kernels_and_recipes(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, tree / name)
    before = _build_outputs()
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(tree)],
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
    assert _build_outputs() == before, "the install wrote build output into the source tree"


def _build_outputs() -> dict[str, int]:
    """Newest modification time under each folder a setuptools build leaves next to the sources."""
    paths = [ROOT / "build", ROOT / "detrun.egg-info", *ROOT.glob("src/*.egg-info")]
    return {str(p): max(f.stat().st_mtime_ns for f in [p, *p.rglob("*")]) for p in paths if p.exists()}
