"""Files -> scripts -> chunks -> vectors -> the scene index.

Re-running ingest over the same library is the normal case (a nightly job, or a
writer dropping a new draft into the folder), so it is incremental: a file whose
bytes are unchanged costs one hash and no embedding; a changed file replaces its
script; a broken file is reported and the rest carry on.

    python -m retrieval.ingest --index-dir var/index --model-dir models/minilm scripts/
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from retrieval.chunk import chunk_script
from retrieval.index import SceneIndex
from retrieval.parse import FOUNTAIN_SUFFIXES, SUPPORTED_SUFFIXES, XML_SUFFIXES, ParseError, parse_file

# When walking a folder, .txt is skipped: libraries are full of README and LICENSE
# .txt files. A .txt named explicitly is read as Fountain.
WALK_SUFFIXES = FOUNTAIN_SUFFIXES | XML_SUFFIXES


@dataclass
class IngestReport:
    files_seen: int = 0
    scripts_added: int = 0  # new or changed scripts (re-)embedded
    scripts_unchanged: int = 0
    scenes: int = 0  # scenes embedded in this run
    chunks: int = 0  # chunks embedded in this run
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people: what was read, embedded, skipped."""
        line = (f"{self.files_seen} files: {self.scripts_added} scripts embedded ({self.scenes} scenes, "
                f"{self.chunks} chunks), {self.scripts_unchanged} unchanged")
        return line + (f", {len(self.errors)} could not be read" if self.errors else "")


def ingest_paths(paths: Iterable[str | Path], *, index_dir: str | Path, embedder, progress: bool = True) -> IngestReport:
    """Ingest files and folders into the index in ``index_dir`` (created if missing) and save it."""
    from tqdm import tqdm

    index = SceneIndex.open(index_dir, model_id=embedder.model_id, dim=embedder.dim)
    report = IngestReport()
    files = list(iter_script_files(paths, errors=report.errors))
    for path in tqdm(files, desc="ingest", unit="file", disable=not progress):
        report.files_seen += 1
        try:
            _ingest_file(path, index=index, embedder=embedder, report=report)
        except ParseError as exc:
            report.errors.append(str(exc))
    index.save()
    return report


def iter_script_files(paths: Iterable[str | Path], *, errors: list[str]) -> Iterator[Path]:
    """Script files under the given paths, sorted within each folder so runs are repeatable."""
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in WALK_SUFFIXES)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                errors.append(f"{path}: unsupported file type {path.suffix or '(no extension)'!r}")
                continue
            candidates = [path]
        else:
            errors.append(f"{path}: no such file or directory")
            continue
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                yield resolved


def _ingest_file(path: Path, *, index: SceneIndex, embedder, report: IngestReport) -> None:
    key = str(path)
    content_hash = file_hash(path)
    previous = index.file_record(key)
    if previous and previous["hash"] == content_hash and previous["script_id"] in index.script_ids():
        report.scripts_unchanged += 1
        return
    script = parse_file(path)
    script.script_id = _unique_script_id(script.script_id, key, index)
    chunks = chunk_script(script)
    if not chunks:
        raise ParseError(path, "no scenes with text found")
    vectors = embedder.encode([c.text for c in chunks])
    # Only now, with the new vectors in hand, drop the old version: a failure above
    # leaves the previous version searchable.
    if previous:
        index.remove_script(previous["script_id"])
    index.remove_script(script.script_id)
    index.add(chunks, vectors, model_id=embedder.model_id)
    index.set_script_info(
        script.script_id,
        title=script.title,
        authors=script.authors,
        format=script.format,
        language=script.language,
        licence=script.licence,
        source_path=key,
    )
    index.record_file(key, content_hash=content_hash, script_id=script.script_id)
    report.scripts_added += 1
    report.scenes += len({c.scene_index for c in chunks})
    report.chunks += len(chunks)


def _unique_script_id(script_id: str, source: str, index: SceneIndex) -> str:
    """Two different files must not share an id, or the second would silently
    replace the first (two "draft.fountain" in different folders)."""
    owner = index.script_source(script_id)
    if owner is None or owner == source:
        return script_id
    suffix = hashlib.sha256(source.encode("utf-8")).hexdigest()[:8]
    return f"{script_id}-{suffix}"


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest screenplays (Fountain) and plays (TEI) into a scene index.")
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders; default: the bundled corpus")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True, help="local sentence-transformers model directory")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from retrieval.bundled import bundled_corpus_dir
    from retrieval.embed import Embedder

    embedder = Embedder(args.model_dir, device=args.device)
    report = ingest_paths(args.paths or [bundled_corpus_dir()], index_dir=args.index_dir, embedder=embedder)
    print(
        f"{report.files_seen} files: {report.scripts_added} added, {report.scripts_unchanged} unchanged, "
        f"{report.scenes} scenes / {report.chunks} chunks embedded, {len(report.errors)} errors"
    )
    for error in report.errors:
        print(f"  error: {error}", file=sys.stderr)
    return 1 if report.errors and not (report.scripts_added or report.scripts_unchanged) else 0


if __name__ == "__main__":
    raise SystemExit(main())
