"""The real all-MiniLM-L6-v2: a /similar query in plain words finds the right script."""

from __future__ import annotations

import pytest

from retrieval.bundled import bundled_corpus_dir
from retrieval.ingest import ingest_paths
from retrieval.search import SceneSearcher

pytestmark = pytest.mark.integration

CORPUS = bundled_corpus_dir()


@pytest.fixture(scope="module")
def real_embedder(embedder_dir):
    from retrieval.embed import Embedder

    return Embedder(embedder_dir)


@pytest.fixture(scope="module")
def searcher(real_embedder, tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("real-index")
    paths = [
        CORPUS / "screenplays" / "the_pulpit",
        CORPUS / "screenplays" / "various",
        CORPUS / "screenplays" / "cyber_bob" / "Cyber_Bob_epWinDebateAgainstLincoln.fountain",
        CORPUS / "screenplays" / "cyber_bob" / "Cyber_Bob_epLocalTransDimensionalRift.fountain",
        CORPUS / "plays" / "amdracor" / "tyler-the-contrast.xml",
        CORPUS / "plays" / "amdracor" / "crothers-the-rector.xml",
    ]
    report = ingest_paths(paths, index_dir=index_dir, embedder=real_embedder, progress=False)
    assert report.errors == [] and report.scripts_added == 8
    return SceneSearcher(index_dir, real_embedder)


def test_real_model_shape(real_embedder):
    vectors = real_embedder.encode(["a detective corners her former partner in a rainy alley"])
    assert vectors.shape == (1, 384) and real_embedder.dim == 384
    assert abs(float((vectors**2).sum()) - 1.0) < 1e-4


@pytest.mark.parametrize(
    "query, script_id",
    [
        # paraphrases, not quotations: the words differ from the scripts'
        ("a hiker climbs a mountain trail to seek wisdom from a guru at the summit", "ascent-to-guru-peak"),
        ("a time traveller argues against Abraham Lincoln in a formal debate", "cyber-bob-epwindebateagainstlincoln"),
        ("a young woman boasts about her fashionable hooped petticoat and flirting with gentlemen", "am000716"),
        ("a lonely country clergyman and his housemaid in a snowbound parsonage", "am000380"),
    ],
)
def test_similar_query_returns_that_script_first(searcher, query, script_id):
    hits = searcher.search(query, k=5)
    assert hits[0].script_id == script_id, [(h.script_id, h.scene.heading, round(h.score, 3)) for h in hits]
