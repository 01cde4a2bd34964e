"""The import rules of ARCHITECTURE.md, enforced: each package imports only the layers below it, no
stage imports another stage or evaluation, everything of ours is imported as delocate.*, nothing
edits sys.path, no module grows past 300 lines, and the code passes flake8."""
import ast
import re
import subprocess
import sys

import pytest

from conftest import ROOT

# package -> the packages of ours it may import (besides itself); ARCHITECTURE.md, "Import rules"
ALLOWED = {
    "common": set(),
    "models": set(),
    "meta": {"common", "models"},
    "preprocessing": {"common"},
    "training": {"common", "models", "meta", "preprocessing"},
    "stage1_recover": {"common", "models", "meta", "preprocessing", "training"},
    "stage2_localize": {"common", "models", "meta", "preprocessing", "training"},
    "evaluation": {"common", "models", "meta", "preprocessing", "training"},
    "workflows": {"common", "models", "meta", "preprocessing", "training", "stage1_recover",
                  "stage2_localize", "evaluation"},
}
OURS = set(ALLOWED) | {"run_pipeline"}


def python_files():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if not parts[0].startswith(".") and "build" not in parts[:1]:
            yield path


def imported_modules(path):
    """Absolute module names that `path` imports, at any depth (function-level imports too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def imported_packages(path):
    """Our packages that `path` imports: delocate.<package>.* -> <package>."""
    parts = (name.split(".") for name in imported_modules(path))
    return {p[1] for p in parts if p[0] == "delocate" and len(p) > 1} & OURS


def bare_imports(path):
    """Imports of our packages without the delocate. prefix: they work only from the repo root and
    would load a second copy of the module beside delocate.<package>."""
    return {name for name in imported_modules(path) if name.split(".")[0] in OURS}


def test_every_package_imports_only_the_layers_below_it():
    broken = []
    for path in python_files():
        package = path.relative_to(ROOT).parts[0]
        if package not in ALLOWED:
            continue  # run_pipeline.py, tests and benchmarks sit on top
        for other in imported_packages(path) - {package}:
            if other not in ALLOWED[package]:
                broken.append(f"{path.relative_to(ROOT)} imports {other}")
    assert not broken, "forbidden imports (ARCHITECTURE.md, Import rules):\n" + "\n".join(broken)


def test_the_rules_catch_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from delocate.evaluation.rows import ScoreRow\n")
    assert imported_packages(bad) == {"evaluation"}
    assert "evaluation" not in ALLOWED["stage1_recover"]


def test_everything_of_ours_is_imported_under_delocate(tmp_path):
    offenders = {str(p.relative_to(ROOT)): sorted(found) for p in python_files()
                 if (found := bare_imports(p))}
    assert not offenders, f"import these as delocate.<package>: {offenders}"
    bare = tmp_path / "bare.py"
    bare.write_text("import numpy\nfrom common.metrics import roc_auc\n")
    assert bare_imports(bare) == {"common.metrics"}


def test_nothing_edits_sys_path():
    edit = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*(\+=|=)")
    offenders = [str(p.relative_to(ROOT)) for p in python_files()
                 if p.name != "test_architecture.py" and edit.search(p.read_text())]
    assert not offenders, offenders


def test_no_python_file_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in python_files()
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"split these into modules that each own one idea: {long}"


def test_the_code_passes_flake8():
    """setup.cfg's [flake8] (100 columns): the style every module is written in."""
    pytest.importorskip("flake8")
    files = [str(p.relative_to(ROOT)) for p in python_files()]
    result = subprocess.run([sys.executable, "-m", "flake8", *files], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
