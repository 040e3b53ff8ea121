"""The layers are law: the import-linter contracts in pyproject.toml hold for the code as it is,
and each kind of contract fails when a wrong-way import is added to a copy of the code.

The contracts (layers, forbidden, independence, acyclic) are documented in
docs/architecture.md; `lint-imports` is the same check a developer runs by hand.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the packages under ``root`` (the code is imported from there, not installed)."""
    return subprocess.run([str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""},
                          timeout=300)


def test_the_code_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONFIG['contracts'])} kept, 0 broken." in result.stdout


def test_every_top_level_package_is_under_contract():
    """A new top-level package must be placed in the layers, or it escapes every rule."""
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests", "emulators", "benchmarks"}
    assert packages == set(CONFIG["root_packages"])


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory) -> Path:
    """The packages and pyproject.toml, copied so that a test can add one bad import."""
    root = tmp_path_factory.mktemp("code")
    shutil.copy(REPO / "pyproject.toml", root)
    for package in CONFIG["root_packages"]:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "corpus"))
    return root


WRONG_WAY = {
    "a service imports the bot": ("backend/serve.py", "import bot.core.replies",
                                  "Services (backend, training, retrieval) and the kernel never import the bot"),
    "the kernel imports a service": ("store/db.py", "import retrieval.chunk",
                                     "Entry points > chat adapters > use cases > services > domain > kernel"),
    "one chat adapter imports another": ("bot/slack/blocks.py", "import bot.discord.render",
                                         "Chat adapters know nothing of each other"),
    "the use cases import a chat SDK": ("bot/core/similar.py", "import slack_sdk",
                                        "Use cases import no chat SDK, no ML framework and no service internals"),
    "the product imports test emulators": ("retrieval/search.py", "import emulators.openai_backend",
                                           "The product never imports tests or emulators"),
    "two modules import each other": ("training/ranks.py", "import training.distributed",
                                      "No import cycles between sibling modules"),
}


@pytest.mark.parametrize("case", sorted(WRONG_WAY))
def test_a_wrong_way_import_breaks_its_contract(code_copy: Path, case: str):
    module, line, contract = WRONG_WAY[case]
    path = code_copy / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # added by the architecture test\n")
    try:
        result = lint_imports(code_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout
    assert Path(module).stem in result.stdout  # the report names the culprit
