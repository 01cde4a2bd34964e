"""The wheel a user installs: everything under the one name delocate, with the shipped model and
the configs the CLI reads, and a CLI that scores from it without the repository."""
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # built from a copy of the source alone: a build/ or *.egg-info/ left in the checkout by an
    # earlier build would otherwise leak its file list into this wheel
    source = tmp_path_factory.mktemp("source") / "delocate"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "runs", "cache", "demo_output", "reports"))
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: the test venv's setuptools builds it, nothing is fetched
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                             "--no-build-isolation", "-w", str(out), str(source)],
                            capture_output=True, text=True, timeout=300, cwd=out)
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"cannot build a wheel here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = out.glob("delocate-*.whl")
    return path


def test_the_wheel_installs_one_package_with_its_model_and_configs(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"delocate"}  # no common/, models/, meta/ loose in site-packages
    for needed in ("delocate/run_pipeline.py", "delocate/configs/cpu-tiny.yaml",
                   "delocate/configs/release.yaml", "delocate/models/release/MODEL_CARD.md",
                   "delocate/models/release/STUDIES.md",
                   "delocate/models/release/localize_best.safetensors",
                   "delocate/models/release/localize_best.json", "delocate/training/engine.py"):
        assert needed in names, needed
    assert not any(name.startswith("delocate/tests/") or name.endswith("setup.py")
                   for name in names)


def test_the_installed_cli_runs_away_from_the_repository(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import sys, delocate.run_pipeline as cli; "
            "assert cli.__file__.startswith(sys.argv[1]), cli.__file__; "
            "sys.exit(cli.main(sys.argv[2:]))")

    def cli(*args):
        return subprocess.run([sys.executable, "-c", code, str(target), *args], cwd=tmp_path,
                              env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=120)

    assert "--stage" in cli("--help").stdout
    # the default config is read from the package: the run gets as far as the missing input
    result = cli("--stage", "preprocess", "--input", str(tmp_path / "nothing_here"), "--out",
                 str(tmp_path / "cache"))
    assert "config file not found" not in result.stderr
    assert "input not found" in result.stderr, result.stderr[-2000:]
