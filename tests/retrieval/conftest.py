"""Fixtures for retrieval tests: fixture data paths and a tiny real embedder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# MIT-licensed fixtures from other Fountain/FDX parsers, shipped with the tests (see ATTRIBUTION.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"fixture data missing at {FIXTURES}"
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    from tests.retrieval.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_embedder_dir):
    from retrieval.embed import Embedder

    return Embedder(tiny_embedder_dir, batch_size=64)


class CountingEmbedder:
    """The tiny embedder, counting what it is asked to embed (to prove skips skip)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.model_id = inner.model_id
        self.texts_encoded = 0

    def encode(self, texts, *, progress: bool = False):
        self.texts_encoded += len(texts)
        return self.inner.encode(texts, progress=progress)


@pytest.fixture
def counting_embedder(tiny_embedder) -> CountingEmbedder:
    return CountingEmbedder(tiny_embedder)


@pytest.fixture(scope="session")
def catalog_postgres_url():
    """A throwaway PostgreSQL database for index catalogs (see tests/support/postgres.py)."""
    from tests.support.postgres import throwaway_database

    with throwaway_database("writersroom_catalog_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path) -> str:
    """An empty catalog database outside any index directory: an SQLite file, or the
    PostgreSQL database with the catalog tables dropped (the first save creates them)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared-catalog.sqlite'}"
    from retrieval.catalog import make_engine, metadata

    url = request.getfixturevalue("catalog_postgres_url")
    engine = make_engine(url)
    try:
        metadata.drop_all(engine)
    finally:
        engine.dispose()
    return url
