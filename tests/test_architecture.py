"""The import rules of ARCHITECTURE.md, enforced: each package imports only the layers below it, no
stage imports another stage or evaluation, and nothing edits sys.path."""
import ast
import re

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
OURS = set(ALLOWED) | {"run_pipeline", "benchmarks"}


def python_files():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if not parts[0].startswith(".") and "build" not in parts[:1]:
            yield path


def imported_packages(path):
    """Top-level names of ours that `path` imports, at any depth (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & OURS
    return found


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
    bad.write_text("def f():\n    from evaluation.metrics import roc_auc\n")
    assert imported_packages(bad) == {"evaluation"}
    assert "evaluation" not in ALLOWED["stage1_recover"]


def test_nothing_edits_sys_path():
    edit = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*(\+=|=)")
    offenders = [str(p.relative_to(ROOT)) for p in python_files()
                 if p.name != "test_architecture.py" and edit.search(p.read_text())]
    assert not offenders, offenders


def test_no_python_file_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in python_files()
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"split these into modules that each own one idea: {long}"
