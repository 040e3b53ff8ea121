"""No SQL outside the store: the product builds its queries in store/ and nowhere else.

Outside store/, SQLAlchemy may give a package only the session types it passes along
(``Session``, ``sessionmaker``) and the exceptions it catches; a ``select`` or a
``session.execute`` there is a query that belongs in a store module. Two places keep
their own SQL on purpose and are named here with why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "backend", "training", "retrieval", "screenplay", "llm", "registry", "config", "observability",
            "files")
ALLOWED_NAMES = {"sqlalchemy.orm": {"Session", "sessionmaker"}, "sqlalchemy.engine": {"URL", "make_url"}}
OWN_SQL = {
    # The scene index's catalog: retrieval's own tables, by default in its own database beside the index.
    "retrieval/catalog.py",
    # /readyz's probe of the store (SELECT 1); observability sits below the store and cannot import it.
    "observability/readiness.py",
}
QUERY_METHODS = {"execute", "scalars", "scalar"}


def _python_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def sql_outside_the_store(path: Path) -> list[str]:
    """What in ``path`` builds or runs SQL: forbidden SQLAlchemy imports and session queries."""
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            problems += [f"line {node.lineno}: import {a.name}" for a in node.names
                         if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            allowed = ALLOWED_NAMES.get(node.module, set())
            if node.module != "sqlalchemy.exc":
                problems += [f"line {node.lineno}: from {node.module} import {a.name}" for a in node.names
                             if a.name not in allowed]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "session"):
            problems.append(f"line {node.lineno}: session.{node.func.attr}(...)")
    return problems


def test_no_package_outside_the_store_queries_the_database():
    found = {str(path.relative_to(REPO)): problems for path in _python_files()
             if str(path.relative_to(REPO)) not in OWN_SQL and (problems := sql_outside_the_store(path))}
    assert found == {}, "move these queries into a store module (store/rooms.py, generations.py, ...)"


@pytest.mark.parametrize("code", ["from sqlalchemy import select\n", "import sqlalchemy\n",
                                  "def f(session):\n    return session.scalars(q)\n"])
def test_the_check_would_notice_a_query(tmp_path, code):
    path = tmp_path / "module.py"
    path.write_text(code)
    assert sql_outside_the_store(path)


def test_the_check_lets_session_types_and_exceptions_through(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("from sqlalchemy.orm import Session, sessionmaker\nfrom sqlalchemy.exc import OperationalError\n")
    assert sql_outside_the_store(path) == []
