"""Every package the code imports is declared in pyproject: the core ones, or the extra that needs them.

The package's module-level imports must be core dependencies (a fresh
``pip install .`` has nothing else); an import inside a function may come
from an extra (matplotlib, for ``--chart``). The tests may use the ``test``
extra, the checkout's benches the ``bench`` extra.
"""
import ast
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"genloop", "tests", "bench"}
PACKAGES = ("genloop", "genloop.kernel", "genloop.net", "genloop.rpc", "genloop.demos")


def declared() -> dict[str, set[str]]:
    """Distribution name (normalised) -> the extras that bring it in ("" for a core dependency)."""
    extras: dict[str, set[str]] = {}
    for requirement in importlib.metadata.requires("genloop") or ():
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0]
        extra = re.search(r"""extra\s*==\s*["']([\w-]+)["']""", requirement)
        extras.setdefault(_normal(name), set()).add(extra[1] if extra else "")
    return extras


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imports(path: Path):
    """``(top-level name, at module level?)`` for every absolute import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    lazy = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.partition(".")[0], id(node) not in lazy


def third_party(files, allowed_lazy: set[str], allowed: set[str]):
    """What ``files`` import that the declared dependencies do not cover, as readable lines."""
    distributions = importlib.metadata.packages_distributions()
    extras = declared()
    missing = []
    for path in files:
        for name, eager in imports(path):
            if name in FIRST_PARTY or name in sys.stdlib_module_names:
                continue
            dists = [_normal(d) for d in distributions.get(name, [name])]
            wanted = allowed if eager else allowed | allowed_lazy
            if not any(extras.get(d, set()) & wanted for d in dists):
                missing.append(f"{path.relative_to(path.anchor)}: {name} ({'module level' if eager else 'lazy'})")
    return missing


def package_files():
    for package in PACKAGES:
        yield from Path(importlib.import_module(package).__file__).parent.rglob("*.py")


def test_the_package_imports_only_what_it_declares():
    assert third_party(package_files(), allowed_lazy={"plot"}, allowed={""}) == []


def test_the_tests_import_only_the_test_extra():
    assert third_party((ROOT / "tests").rglob("*.py"), allowed_lazy=set(), allowed={"", "test"}) == []


def test_the_benches_import_only_the_bench_extra():
    if not (ROOT / "bench").is_dir():
        pytest.skip("bench/ is part of the checkout, not of the package")
    assert third_party((ROOT / "bench").rglob("*.py"), allowed_lazy=set(), allowed={"", "bench"}) == []


def test_an_undeclared_import_is_found(tmp_path):
    script = tmp_path / "uses.py"
    script.write_text("import requests\n\ndef later():\n    import matplotlib\n")
    assert third_party([script], allowed_lazy={"plot"}, allowed={""}) == [f"{script.relative_to('/')}: requests (module level)"]


def test_every_bench_module_imports():
    """The benches are run by hand, not by the suite: an import broken by a move elsewhere shows here."""
    if not (ROOT / "bench").is_dir():
        pytest.skip("bench/ is part of the checkout, not of the package")
    modules = sorted(f"bench.{p.stem}" for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")
    modules += sorted(f"bench.peers.{p.stem}" for p in (ROOT / "bench" / "peers").glob("*.py") if p.stem != "__init__")
    broken = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            if e.name in {"uvloop", "trio", "gunicorn", "waitress", "flask"}:     # the bench extra, absent here
                continue
            broken.append(f"{name}: {e}")
    assert broken == []
