"""The tests import the repository's own packages: tests/seqsum/, tests/study/ and tests/analysis/ mirror them
without shadowing them (pytest's importlib import mode; the repository root, not tests/, on sys.path)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGES = ("seqsum", "study", "analysis")


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_is_the_repositorys_own_not_its_tests_folder(name):
    package = importlib.import_module(name)
    assert package.__file__ is not None, f"{name} imported as a namespace package: {list(package.__path__)}"
    assert Path(package.__file__) == REPO / name / "__init__.py"
    assert (REPO / "tests" / name / "__init__.py").is_file()  # the mirror exists, so the check means something


def test_every_test_module_is_imported_under_its_dotted_path(request):
    """tests.seqsum.test_config and a tests/study/test_config.py would not collide: every folder of test modules
    is a package, and pytest imports each module under its path from the root (here: every module collected)."""
    folders = {f.parent for f in (REPO / "tests").rglob("test_*.py")}
    assert not [f for f in folders if not (f / "__init__.py").is_file()], "a test folder without __init__.py"
    modules = {item.module for item in request.session.items if getattr(item, "module", None) is not None}
    assert request.module in modules
    for m in modules:
        assert m.__name__ == ".".join(Path(m.__file__).relative_to(REPO).with_suffix("").parts)
