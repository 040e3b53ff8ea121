"""Bad input: decoding rules, size limits, and a library ingest that indexes the good
files, reports each bad one with its reason, and loses nothing already indexed."""

from __future__ import annotations

import pytest

from retrieval.index import SceneIndex
from retrieval.ingest import ingest_paths
from retrieval.parse import ParseError, decode_text, parse_file
from tests.retrieval.test_fdx import BILLION_LAUGHS, XXE
from tests.retrieval.test_pdf import PAGE_1, PAGE_2, encrypt, make_pdf
from tests.retrieval.test_plaintext import LAID_OUT, PLAY, PROSE

FOUNTAIN = "INT. BAKERY - DAY\n\nFlour everywhere. JUNE kneads.\n\nJUNE\nThe oven is lying to me.\n"
FDX = """<?xml version="1.0" encoding="UTF-8"?>
<FinalDraft DocumentType="Script" Version="5"><Content>
<Paragraph Type="Scene Heading"><Text>EXT. HARBOUR - NIGHT</Text></Paragraph>
<Paragraph Type="Action"><Text>Fog. A foghorn.</Text></Paragraph>
<Paragraph Type="Character"><Text>CAPTAIN</Text></Paragraph>
<Paragraph Type="Dialogue"><Text>Nobody sails tonight.</Text></Paragraph>
</Content></FinalDraft>"""


# -- decoding ---------------------------------------------------------------------------


def test_utf8_bom_utf16_and_clean_cp1252_decode():
    assert decode_text("\ufeffCAFÉ".encode("utf-8"), path="a") == "CAFÉ"
    assert decode_text("CAFÉ – naïve".encode("utf-16"), path="a") == "CAFÉ – naïve"
    assert decode_text("It’s “fine” – café".encode("cp1252"), path="a") == "It’s “fine” – café"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\x81\x8d\x8f\x90\x9d" * 10, "not valid UTF-8 or Windows-1252"),  # bytes cp1252 leaves undefined
        (b"caf\xe9 \x1b[31m red", "control characters rule out Windows-1252"),  # cp1252 would "decode" it
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    ],
)
def test_undecodable_text_is_refused_with_a_reason(data, reason):
    with pytest.raises(ParseError, match=reason):
        decode_text(data, path="script.fountain")


def test_size_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "huge.fountain"
    path.write_text(FOUNTAIN * 10, encoding="utf-8")
    with pytest.raises(ParseError, match=r"huge\.fountain: file is \d+ bytes, larger than the 100 byte limit"):
        parse_file(path, max_bytes=100)


# -- a library with every kind of bad file ------------------------------------------------


def build_library(root):
    root.mkdir()
    good = {
        "bakery.fountain": FOUNTAIN,
        "harbour.fdx": FDX,
        "long-night.txt": LAID_OUT,
        "mini-play.txt": PLAY,
    }
    for name, text in good.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "diner.pdf").write_bytes(make_pdf([PAGE_1, PAGE_2]))
    bad = root / "bad"
    bad.mkdir()
    (bad / "mojibake.fountain").write_bytes(b"INT. ROOM\n\n\x81\x8d\x8f\x90\x9d\n")
    (bad / "picture.fountain").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (bad / "huge.fountain").write_text(FOUNTAIN * 400, encoding="utf-8")  # > the 4 kB limit used below
    (bad / "laughs.fdx").write_text(BILLION_LAUGHS, encoding="utf-8")
    (bad / "xxe.fdx").write_text(XXE, encoding="utf-8")
    (bad / "cut.xml").write_text("<TEI xmlns='http://www.tei-c.org/ns/1.0'><text><body>", encoding="utf-8")
    (bad / "locked.pdf").write_bytes(encrypt(make_pdf([PAGE_1]), user_password="s3cret"))
    (bad / "scan.pdf").write_bytes(make_pdf([[]]))
    whole = make_pdf([PAGE_1])
    (bad / "torn.pdf").write_bytes(whole[: len(whole) // 2])
    (root / "notes.txt").write_text(PROSE, encoding="utf-8")  # not a script: skipped, with a reason
    (root / "README.txt").write_text("How to use this folder.", encoding="utf-8")  # paperwork: passed over
    (root / "LICENSE").write_text("MIT", encoding="utf-8")
    return root


EXPECTED_FAILURES = {
    "mojibake.fountain": "not valid UTF-8 or Windows-1252",
    "picture.fountain": "binary file",
    "huge.fountain": "larger than the 4096 byte limit",
    "laughs.fdx": "refused: the XML declares a DTD",
    "xxe.fdx": "refused: the XML declares a DTD",
    "cut.xml": "malformed XML",
    "locked.pdf": "encrypted",
    "scan.pdf": "needs OCR",
    "torn.pdf": "corrupt or truncated PDF",
}


def test_folder_ingest_indexes_good_files_and_reports_each_bad_one(tmp_path, tiny_embedder):
    library = build_library(tmp_path / "lib")
    report = ingest_paths([library], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False, max_file_bytes=4096)
    assert report.scripts_added == 5
    failures = {path.rsplit("/", 1)[-1]: reason for path, reason in report.failed}
    assert set(failures) == set(EXPECTED_FAILURES)
    for name, reason in EXPECTED_FAILURES.items():
        assert reason in failures[name], (name, failures[name])
    assert [(p.rsplit("/", 1)[-1], r) for p, r in report.skipped] == [
        ("notes.txt", "text that is neither a screenplay nor a play (no scene headings, character cues or act/scene divisions)"),
    ]
    assert report.files_seen == 5 + len(EXPECTED_FAILURES) + 1  # README.txt and LICENSE not even opened
    assert any("locked.pdf: " in line for line in report.errors)
    assert "1 not scripts, 9 could not be read" in report.summary()
    index = SceneIndex.load(tmp_path / "idx")
    assert index.script_ids() == {"bakery", "harbour", "diner", "long-night", "mini-play"}


def test_a_file_broken_after_indexing_keeps_its_old_version(tmp_path, tiny_embedder):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "harbour.fdx").write_text(FDX, encoding="utf-8")
    (library / "bakery.fountain").write_text(FOUNTAIN, encoding="utf-8")
    first = ingest_paths([library], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    before = SceneIndex.load(tmp_path / "idx").stats()
    (library / "harbour.fdx").write_text(FDX[: len(FDX) // 2], encoding="utf-8")  # saved half way
    again = ingest_paths([library], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    assert first.scripts_added == 2 and again.scripts_unchanged == 1
    assert len(again.failed) == 1 and "malformed XML" in again.failed[0][1]
    assert SceneIndex.load(tmp_path / "idx").stats() == before  # the old harbour scenes are still searchable


class ExplodingEmbedder:
    """Fails on the second script, as a crashed model or a full disk would."""

    def __init__(self, inner) -> None:
        self.inner, self.dim, self.model_id, self.calls = inner, inner.dim, inner.model_id, 0

    def encode(self, texts, *, progress: bool = False):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("embedder died")
        return self.inner.encode(texts, progress=progress)


def test_a_crash_half_way_keeps_what_was_indexed(tmp_path, tiny_embedder):
    library = tmp_path / "lib"
    library.mkdir()
    (library / "a-bakery.fountain").write_text(FOUNTAIN, encoding="utf-8")
    ingest_paths([library], index_dir=tmp_path / "idx", embedder=tiny_embedder, progress=False)
    (library / "b-harbour.fdx").write_text(FDX, encoding="utf-8")
    (library / "c-long-night.txt").write_text(LAID_OUT, encoding="utf-8")
    with pytest.raises(RuntimeError, match="embedder died"):
        ingest_paths([library], index_dir=tmp_path / "idx", embedder=ExplodingEmbedder(tiny_embedder), progress=False)
    ids = SceneIndex.load(tmp_path / "idx").script_ids()
    assert "a-bakery" in ids and "b-harbour" in ids  # the earlier file and the one finished before the crash
    assert "long-night" not in ids
