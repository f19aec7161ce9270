"""The three packages are typed (PEP 561) and versioned from one source: the distribution metadata."""

import importlib
import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGES = ["erase_core", "erase_langchain", "erase_llamaindex"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", PACKAGES)
def test_version_is_the_installed_distributions(name):
    module = importlib.import_module(name)
    assert module.__version__ == importlib.metadata.version("erase-icl")
    assert "__version__" in module.__all__


@pytest.mark.parametrize("name", PACKAGES)
def test_package_has_a_py_typed_marker(name):
    module = importlib.import_module(name)
    assert (Path(module.__file__).parent / "py.typed").is_file()


@pytest.mark.slow
@pytest.mark.processes
def test_wheel_ships_the_py_typed_markers(tmp_path):
    """Built as a user would get it: each package's py.typed is in the wheel.

    Built from a copy of the sources, so the build leaves nothing in the working tree.
    """
    source = tmp_path / "src"
    source.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, source / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("erase_icl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PACKAGES:
        assert f"{name}/py.typed" in names
    version = importlib.metadata.version("erase-icl")
    assert wheel.name.startswith(f"erase_icl-{version}-")
