"""The store fixtures of tests/store (SQLite and PostgreSQL), for training's store readers."""

import pytest  # noqa: E402

from tests.store.conftest import db_url, engine, postgres_url, session, session_factory  # noqa: F401


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory):
    """A tiny chat model directory named like a model ("tiny-chat"), with room for real prompts."""
    from tests.support.tiny_lm import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("models") / "tiny-chat", context_window=2048)


@pytest.fixture
def tiny_training_env(tiny_base_model, monkeypatch):
    """Training settings for a run of seconds on the tiny model, in this test's own home."""
    from tests.training.run_support import TRAIN_ENV

    monkeypatch.setenv("WRITERSROOM_MODEL_GENERATOR", str(tiny_base_model))
    for name, value in TRAIN_ENV.items():
        monkeypatch.setenv(name, value)
    return tiny_base_model
