from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_lm import build_tiny_chat_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-lm"))
