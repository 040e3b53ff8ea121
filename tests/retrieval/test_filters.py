"""Search filters: genre, writer, show, format, language, in every mode and at both levels."""

from __future__ import annotations

import pytest

from retrieval.index import SceneIndex
from retrieval.ingest import ingest_paths
from retrieval.search import SceneSearcher, normalise_filters, script_matches
from tests.retrieval.hybrid_support import write_library

# A tiny German TEI play about a bakery too, so a bakery query has candidates in two formats and languages.
TEI_PLAY = """<?xml version="1.0" encoding="UTF-8"?>
<TEI xmlns="http://www.tei-c.org/ns/1.0" xml:id="backstube" xml:lang="ger">
  <teiHeader><fileDesc>
    <titleStmt><title>Die Backstube</title>
      <author><persName><forename>Greta</forename><surname>Mehl</surname></persName></author></titleStmt>
    <publicationStmt><p>test</p></publicationStmt><sourceDesc><p>test</p></sourceDesc></fileDesc>
    <profileDesc><textClass><keywords><term type="genreTitle">Comedy</term></keywords></textClass></profileDesc>
  </teiHeader>
  <text><body>
    <div type="act"><head>Erster Akt</head>
      <div type="scene"><head>Erster Auftritt</head>
        <stage>The bakery at night. Bread in the oven, flour on the counter.</stage>
        <sp who="#martha"><speaker>MARTHA.</speaker><p>The bread must rise before dawn, the baker kneads the dough.</p></sp>
      </div>
      <div type="scene"><head>Zweiter Auftritt</head>
        <sp who="#martha"><speaker>MARTHA.</speaker><p>Warm bread from the oven, crumbs on the bakery counter.</p></sp>
      </div>
    </div>
  </body></text>
</TEI>
"""

QUERY = "the baker pulls warm bread from the oven and kneads the dough in the bakery"


@pytest.fixture(scope="module")
def searcher(tmp_path_factory, tiny_embedder):
    root = tmp_path_factory.mktemp("filters")
    library = write_library(root / "lib", extra={"backstube.xml": TEI_PLAY})
    report = ingest_paths([library], index_dir=root / "idx", embedder=tiny_embedder, progress=False)
    assert report.errors == [] and report.scripts_added == 4
    # The TEI play's genreTitle is stored by ingest; the Fountain scripts carry no genre or
    # show, so they get them here per script (`writersroom ingest --genre` sets one per run).
    index = SceneIndex.load(root / "idx")
    assert index.script_info("backstube")["genre"] == "Comedy"
    index.set_script_info("bakery", genre="Drama", show="Kitchen Nights")
    index.set_script_info("harbour", genre="drama", show="Kitchen Nights")
    index.save()
    return SceneSearcher(root / "idx", tiny_embedder)


def _scripts(searcher, **kwargs) -> set[str]:
    return {h.script_id for h in searcher.search(QUERY, k=20, **kwargs)}


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_unfiltered_search_sees_both_bakeries(searcher, mode):
    assert {"bakery", "backstube"} <= _scripts(searcher, mode=mode)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize("filters, expected", [
    ({"format": "TEI"}, {"backstube"}),
    ({"format": "fountain"}, {"bakery", "harbour", "courtroom"}),
    ({"language": "DE"}, {"backstube"}),  # stored as ISO 639-2 "ger"
    ({"language": "de-AT"}, {"backstube"}),
    ({"writer": "greta mehl"}, {"backstube"}),
    ({"writer": "MEHL"}, {"backstube"}),  # a whole word of the name is enough
    ({"writer": "bakery writer"}, {"bakery"}),
    ({"genre": "DRAMA"}, {"bakery", "harbour"}),
    ({"genre": ["comedy", "farce"]}, {"backstube"}),  # a list: any value may match
    ({"show": "kitchen nights", "genre": "drama"}, {"bakery", "harbour"}),  # every filter must hold
    ({"show": "kitchen nights", "format": "tei"}, set()),
    ({"writer": "meh"}, set()),  # not a whole word
    ({"genre": "musical"}, set()),
])
def test_filters_keep_only_matching_scripts(searcher, mode, filters, expected):
    # every scene shares a word with the query ("the"), so BM25 too returns each matching script
    assert _scripts(searcher, mode=mode, filters=filters) == expected


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_filters_apply_at_script_level(searcher, mode):
    hits = searcher.search(QUERY, k=5, mode=mode, level="script", filters={"format": "fountain"})
    assert hits[0].script_id == "bakery" and "backstube" not in {h.script_id for h in hits}
    hits = searcher.search(QUERY, k=5, mode=mode, level="script", filters={"language": "de"})
    assert [h.script_id for h in hits] == ["backstube"]


def test_dense_over_fetches_until_enough_matching_scenes(searcher):
    # courtroom scenes are the furthest from a bakery query, but asking for them must still fill k
    hits = searcher.search(QUERY, k=3, mode="dense", filters={"writer": "courtroom writer"})
    assert len(hits) == 3 and {h.script_id for h in hits} == {"courtroom"}


def test_empty_filter_values_are_ignored_and_unknown_keys_refused(searcher):
    assert _scripts(searcher, filters={"genre": "", "writer": None, "show": []}) == _scripts(searcher)
    with pytest.raises(ValueError, match="unknown filter 'author'"):
        searcher.search(QUERY, filters={"author": "x"})


def test_script_matches_on_stored_facts():
    info = {"authors": ["Royall Tyler"], "format": "tei", "language": "eng", "genre": "Comedy"}
    assert script_matches(info, normalise_filters({"writer": "Royall  TYLER", "language": "en"}))
    assert script_matches(info, normalise_filters({"writer": "tyler", "genre": "comedy"}))
    assert not script_matches(info, normalise_filters({"show": "anything"}))  # a missing fact never matches
    assert not script_matches(info, normalise_filters({"format": "fountain"}))
