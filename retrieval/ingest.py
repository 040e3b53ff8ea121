"""Files -> scripts -> chunks -> vectors -> the scene index.

Re-running ingest over the same library is the normal case (a nightly job, or a
writer dropping a new draft into the folder), so it is incremental: a file whose
bytes are unchanged costs one hash and no embedding; a changed file replaces its
script; a broken file is reported with its reason (undecodable text, binary, too large,
malformed or hostile XML, encrypted or scanned PDF) and the rest carry on. A text file
that is neither a screenplay nor a play is reported as skipped, not as broken.

Facts a file does not carry (genre, show) or carries wrongly can be given for a whole
run (``facts``): they are stored on every script of the run, unchanged files included
(no re-embedding), and win over what the files say; search filters read them.

    python -m retrieval.ingest --index-dir var/index --model-dir models/minilm [--genre G] [--show S] scripts/
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from files.durable import sha256_file
from retrieval.chunk import chunk_script
from retrieval.index import SceneIndex
from retrieval.ingest_status import LibraryLoad, write_status
from retrieval.parse import (
    MAX_FILE_BYTES,
    SUPPORTED_SUFFIXES,
    NotAScript,
    ParseError,
    parse_file,
)

# Every supported type is walked, .txt included: a .txt that is not a script is told
# apart by content (see retrieval.parse.detect_format) and reported as skipped. Files
# named like a project's paperwork are passed over without a word, since libraries are
# full of them ("LICENSE_Cyber_Bob_Dedication.txt", "README.txt").
WALK_SUFFIXES = SUPPORTED_SUFFIXES
PAPERWORK = re.compile(
    r"^(?:LICEN[CS]E|README|COPYING|COPYRIGHT|AUTHORS|CONTRIBUTORS|CONTRIBUTING|CHANGELOG|CHANGES|NOTICE|INSTALL|"
    r"ATTRIBUTION|CREDITS|THANKS|TODO)",
    re.IGNORECASE,
)
# Script facts an ingest run may set on all its scripts ("authors" is what the
# "writer" search filter reads).
RUN_FACTS = ("genre", "show", "authors", "language")


@dataclass
class IngestReport:
    files_seen: int = 0
    scripts_added: int = 0  # new or changed scripts (re-)embedded
    scripts_unchanged: int = 0
    scenes: int = 0  # scenes embedded in this run
    chunks: int = 0  # chunks embedded in this run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): could not be read
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): read, but not a script
    stopped: bool = False  # asked to stop before its last file (see ingest_paths' ``stop``)

    @property
    def errors(self) -> list[str]:
        """``failed`` as "path: reason" lines (what the CLI and bots print)."""
        return [f"{path}: {reason}" for path, reason in self.failed]

    def summary(self) -> str:
        """One line for people: what was read, embedded, skipped."""
        line = (f"{self.files_seen} files: {self.scripts_added} scripts embedded ({self.scenes} scenes, "
                f"{self.chunks} chunks), {self.scripts_unchanged} unchanged")
        line += f", {len(self.skipped)} not scripts" if self.skipped else ""
        line += f", {len(self.failed)} could not be read" if self.failed else ""
        return line + (", stopped before the end" if self.stopped else "")


def ingest_paths(paths: Iterable[str | Path], *, index_dir: str | Path, embedder, progress: bool = True,
                 max_file_bytes: int = MAX_FILE_BYTES, facts: Mapping[str, Any] | None = None,
                 catalog_url: str | None = None, load_status: bool = False, stop: Callable[[], bool] | None = None,
                 on_checkpoint: Callable[[LibraryLoad], None] | None = None) -> IngestReport:
    """Ingest files and folders into the index in ``index_dir`` (created if missing) and save it.

    A file that cannot be read is recorded in ``report.failed`` as (path, reason) and the
    run goes on; files larger than ``max_file_bytes`` are refused before being read.
    ``facts`` (any of RUN_FACTS; None or empty values are ignored) are stored on every
    script of the run, over what the files say. ``catalog_url``: the index's metadata
    database, if not the SQLite file in ``index_dir``.

    ``load_status``: load the library in steps that searchers can use while the run goes on:
    the index is also saved after each tenth of the files, and after each save the status
    file of retrieval.ingest_status says how many files are done (``on_checkpoint`` gets each
    status written). ``stop`` is asked before each file; once it answers True the run saves
    what it has done and returns early (``report.stopped``).
    """
    from tqdm import tqdm

    run_facts = _run_facts(facts)
    index = SceneIndex.open(index_dir, model_id=embedder.model_id, dim=embedder.dim, catalog_url=catalog_url)
    report = IngestReport()
    files = list(iter_script_files(paths, failed=report.failed))
    steps = _checkpoints(len(files)) if load_status else set()

    def checkpoint(state: str, done: int) -> None:
        if load_status:
            load = LibraryLoad(state=state, files_done=done, files_total=len(files))
            write_status(index_dir, load)
            if on_checkpoint is not None:
                on_checkpoint(load)

    checkpoint("loading", 0)
    saved_done, finished = 0, False
    # Saved even when something unexpected (the embedder, the disk) stops the run half
    # way: every file finished so far is kept, and a file caught mid-way has not touched
    # the index, because its old version is only removed once its new vectors exist.
    try:
        for done, path in enumerate(tqdm(files, desc="ingest", unit="file", disable=not progress), 1):
            if stop is not None and stop():
                report.stopped = True
                break
            report.files_seen += 1
            try:
                _ingest_file(path, index=index, embedder=embedder, report=report, max_file_bytes=max_file_bytes,
                             facts=run_facts)
            except NotAScript as exc:
                report.skipped.append((exc.path, exc.reason))
            except ParseError as exc:
                report.failed.append((exc.path, exc.reason))
            if done in steps:
                index.save()
                saved_done = done
                checkpoint("loading", done)
        finished = not report.stopped
    finally:
        try:
            try:
                index.save()
                saved_done = report.files_seen
            finally:
                index.close()
        finally:
            checkpoint("done" if finished and saved_done == len(files) else "stopped", saved_done)
    return report


def _checkpoints(total: int) -> set[int]:
    """Files done after which a background load saves: each tenth of the run (the last
    file is saved by the run's own final save)."""
    return {max(1, round(total * step / 10)) for step in range(1, 10)} - {total}


def _run_facts(facts: Mapping[str, Any] | None) -> dict[str, Any]:
    unknown = sorted(set(facts or {}) - set(RUN_FACTS))
    if unknown:
        raise ValueError(f"unknown script facts {', '.join(unknown)}; an ingest run can set {', '.join(RUN_FACTS)}")
    return {key: value for key, value in (facts or {}).items() if value not in (None, "", [], ())}


def iter_script_files(paths: Iterable[str | Path], *, failed: list[tuple[str, str]]) -> Iterator[Path]:
    """Script files under the given paths, sorted within each folder so runs are repeatable.

    In a folder: supported types only, leaving out hidden files and folders and project
    paperwork (LICENSE*, README*, COPYING*, ...). A file named explicitly is always tried.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file() and _walkable(p.relative_to(path)))
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                failed.append((str(path), f"unsupported file type {path.suffix or '(no extension)'!r}"))
                continue
            candidates = [path]
        else:
            failed.append((str(path), "no such file or directory"))
            continue
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                yield resolved


def _walkable(relative: Path) -> bool:
    if any(part.startswith(".") for part in relative.parts):
        return False
    return relative.suffix.lower() in WALK_SUFFIXES and not PAPERWORK.match(relative.name)


def _ingest_file(path: Path, *, index: SceneIndex, embedder, report: IngestReport, max_file_bytes: int,
                 facts: Mapping[str, Any]) -> None:
    key = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ParseError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if size > max_file_bytes:  # before hashing: a huge file is not even read
        raise ParseError(path, f"file is {size} bytes, larger than the {max_file_bytes} byte limit")
    try:
        content_hash = sha256_file(path)
    except OSError as exc:
        raise ParseError(path, f"cannot read file ({exc.strerror or exc})") from exc
    previous = index.file_record(key)
    if previous and previous["hash"] == content_hash and previous["script_id"] in index.script_ids():
        if facts:  # new facts for an unchanged file: recorded without re-embedding
            index.set_script_info(previous["script_id"], **facts)
        report.scripts_unchanged += 1
        return
    script = parse_file(path, max_bytes=max_file_bytes)
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
    info = {"title": script.title, "authors": script.authors, "format": script.format, "language": script.language,
            "licence": script.licence, "source_path": key}
    if script.metadata.get("genre"):  # TEI's genreTitle
        info["genre"] = script.metadata["genre"]
    index.set_script_info(script.script_id, **(info | dict(facts)))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest screenplays (Fountain, FDX, PDF, text) and plays (TEI, Gutenberg text) into a scene index.")
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders; default: the bundled corpus")
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True, help="local sentence-transformers model directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--catalog-url", help="SQLAlchemy URL of the metadata catalog (default: SQLite in the index dir)")
    for fact in ("genre", "show", "language"):
        parser.add_argument(f"--{fact}", help=f"{fact} of every script of this run (overrides the files)")
    parser.add_argument("--writer", action="append", help="a writer of every script of this run (repeatable)")
    args = parser.parse_args(argv)
    from retrieval.bundled import bundled_corpus_dir
    from retrieval.embed import Embedder

    embedder = Embedder(args.model_dir, device=args.device)
    facts = {"genre": args.genre, "show": args.show, "language": args.language, "authors": args.writer}
    report = ingest_paths(args.paths or [bundled_corpus_dir()], index_dir=args.index_dir, embedder=embedder, facts=facts,
                          catalog_url=args.catalog_url)
    print(
        f"{report.files_seen} files: {report.scripts_added} added, {report.scripts_unchanged} unchanged, "
        f"{report.scenes} scenes / {report.chunks} chunks embedded, {len(report.failed)} errors, "
        f"{len(report.skipped)} skipped"
    )
    for path, reason in report.failed:
        print(f"  error: {path}: {reason}", file=sys.stderr)
    for path, reason in report.skipped:
        print(f"  skipped: {path}: {reason}", file=sys.stderr)
    return 1 if report.errors and not (report.scripts_added or report.scripts_unchanged) else 0


if __name__ == "__main__":
    raise SystemExit(main())
