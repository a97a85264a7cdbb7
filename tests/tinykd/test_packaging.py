"""tinykd installs as one import name: the stage folders at the top of the checkout are subpackages of `tinykd`."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
STAGE_FOLDERS = ("teacher", "augment", "student", "compress", "benchmarks", "search", "serving")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _source_packages() -> set[str]:
    """Every folder with an __init__.py under tinykd/ and the stage folders, as its installed dotted name."""
    found = set()
    for folder in ("tinykd", *STAGE_FOLDERS):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join(parts if folder == "tinykd" else ("tinykd", *parts)))
    return found


def test_every_source_package_is_installed_under_tinykd():
    """tinykd/<folder> links to each stage folder, so a checkout imports (and lint-imports walks) the same tree that
    a wheel installs."""
    assert all((ROOT / "tinykd" / folder).resolve() == ROOT / folder for folder in STAGE_FOLDERS)
    setuptools = _setuptools()
    assert set(setuptools["packages"]) == _source_packages()  # a new subpackage not listed would be left out of a wheel
    assert setuptools["package-dir"] == {f"tinykd.{folder}": folder for folder in STAGE_FOLDERS}


def test_no_module_imports_a_stage_folder_as_a_top_level_name():
    """`import teacher` works from a checkout's root by accident (the cwd is on sys.path) and loads a second copy."""
    offenders = []
    for path in [*ROOT.glob("tinykd/**/*.py"), *(p for f in (*STAGE_FOLDERS, "tests") for p in ROOT.glob(f"{f}/**/*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                          if name.split(".")[0] in STAGE_FOLDERS]
    assert not offenders, offenders


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A non-editable install of this checkout (a built wheel's layout) into a bare directory."""
    source, target = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("site")
    # Built from a copy: setuptools writes build/ beside pyproject.toml.
    for name in ("pyproject.toml", "README.md", "tinykd", *STAGE_FOLDERS):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__"), "symlinks": True}
                                           if copy is shutil.copytree else {}))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def test_a_non_editable_install_claims_only_tinykd_and_runs_from_elsewhere(installed, tmp_path):
    tops = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin"}
    assert tops == {"tinykd"}
    assert (installed / "tinykd" / "teacher" / "finetune.py").is_file()
    assert (installed / "tinykd" / "compress" / "device_train.sh").is_file()
    env = os.environ | {"PYTHONPATH": str(installed)}
    where = subprocess.run([sys.executable, "-c", "import tinykd.teacher, tinykd.search.stage; print(tinykd.teacher.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.returncode == 0 and where.stdout.startswith(str(installed)), where.stderr[-2000:]
    check = subprocess.run([sys.executable, "-m", "tinykd", "check", "--config", str(ROOT / "configs" / "sentiment_zh.yaml"),
                            "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]
    assert "sentiment_zh" in check.stdout
    script = subprocess.run([str(installed / "bin" / "tinykd"), "--help"], cwd=tmp_path, env=env, capture_output=True,
                            text=True)  # the console script pip wrote, as a user types it
    assert script.returncode == 0 and script.stdout.startswith("usage: tinykd "), script.stderr[-2000:]


def test_the_import_contracts_hold(installed):
    """import-linter's contracts (pyproject.toml) on the built copy (`lint-imports` in the checkout walks the same
    tree through the tinykd/<folder> links)."""
    done = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", str(ROOT / "pyproject.toml"),
                           "--no-cache"], cwd=installed, env=os.environ | {"PYTHONPATH": str(installed)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_spine_contract_names_every_spine_module():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    spine = next(c for c in contracts if c["type"] == "forbidden")
    modules = {p.stem for p in (ROOT / "tinykd").glob("*.py") if p.stem != "__init__"}
    packages = {p.parent.name for p in (ROOT / "tinykd").glob("*/__init__.py") if not p.parent.is_symlink()}
    assert set(spine["source_modules"]) == {f"tinykd.{name}" for name in modules | packages}
    assert set(spine["forbidden_modules"]) == {f"tinykd.{folder}" for folder in STAGE_FOLDERS}
