"""Packaging: conda and pip agree on dependencies; the package data ships; entry points resolve."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memgpt_lab"
# conda-only entries: the interpreter and the installer, not runtime dependencies
CONDA_TOOLING = {"python", "pip"}


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def environment() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def specs(requirements: list[str]) -> dict[str, SpecifierSet]:
    parsed = [Requirement(text) for text in requirements]
    result = {canonicalize_name(r.name): r.specifier for r in parsed}
    assert len(result) == len(parsed), f"a dependency is listed twice: {requirements}"
    return result


def test_conda_and_pip_runtime_dependencies_agree() -> None:
    pip = specs(pyproject()["project"]["dependencies"])
    entries = environment()["dependencies"]
    conda_text = [e for e in entries if isinstance(e, str)]
    conda = {k: v for k, v in specs(conda_text).items() if k not in CONDA_TOOLING}
    assert sorted(conda) == sorted(pip)
    for name, specifier in pip.items():
        assert conda[name] == specifier, f"{name}: conda {conda[name]} != pip {specifier}"
    assert "nest-asyncio" in pip  # the same name on both sides (PyPI and conda-forge)


def test_conda_environment_installs_the_package_and_its_python() -> None:
    env = environment()
    entries = env["dependencies"]
    pip_section = [e["pip"] for e in entries if isinstance(e, dict) and "pip" in e]
    assert pip_section == [["-e ."]]
    python = specs([e for e in entries if isinstance(e, str)])["python"]
    assert python == SpecifierSet(pyproject()["project"]["requires-python"])
    assert "conda-forge" in env["channels"]


def package_data_on_disk() -> list[str]:
    data = [p for p in PACKAGE.joinpath("presets").rglob("*") if p.suffix in (".txt", ".yaml")]
    return sorted(str(p.relative_to(ROOT)) for p in [*data, PACKAGE / "py.typed"])


def test_package_data_on_disk_is_what_the_code_expects() -> None:
    files = package_data_on_disk()
    for expected in (
        "memgpt_lab/presets/personas/sam_pov.txt",
        "memgpt_lab/presets/personas/memgpt_starter.txt",
        "memgpt_lab/presets/humans/basic.txt",
        "memgpt_lab/presets/humans/chad.txt",
        "memgpt_lab/presets/humans/cs_phd.txt",
        "memgpt_lab/presets/presets/memgpt_chat.yaml",
        "memgpt_lab/presets/prompts/memgpt_chat.txt",
        "memgpt_lab/py.typed",
    ):
        assert expected in files


def test_package_data_globs_cover_the_files() -> None:
    globs = pyproject()["tool"]["setuptools"]["package-data"]["memgpt_lab"]
    covered = {str(p.relative_to(ROOT)) for pattern in globs for p in PACKAGE.glob(pattern)}
    assert set(package_data_on_disk()) <= covered


def test_build_includes_the_package_data(tmp_path: Path) -> None:
    """Build the package as a wheel would (setuptools' build_py) from a copy of the tree.

    ``pip wheel`` needs the ``wheel`` package with this setuptools, and builds in
    the source tree; ``build_py`` applies the same package-data rules to a copy.
    """
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(PACKAGE, tmp_path / "memgpt_lab", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import setuptools; setuptools.setup()"]
        + ["-q", "build_py", "--build-lib", "out"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "out"
    built = sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in (".txt", ".yaml", ".typed")
    )
    assert built == package_data_on_disk()
    assert (out / "memgpt_lab" / "agent.py").is_file()


def entry_points() -> list[tuple[str, str]]:
    project = pyproject()["project"]
    targets = list(project.get("scripts", {}).items())
    for group in project.get("entry-points", {}).values():
        targets.extend(group.items())
    return targets


@pytest.mark.parametrize(("name", "target"), entry_points())
def test_entry_points_resolve(name: str, target: str) -> None:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        assert callable(getattr(module, attribute)), f"{name} -> {target}"
