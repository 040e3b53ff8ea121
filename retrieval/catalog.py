"""The scene index's metadata catalog: SQL tables beside the FAISS files.

One job: persist what a ``SceneIndex`` knows besides its vectors (embedder, kind and
parameters, which vectors files are current, scripts and their facts, ingested files,
scenes and chunk records by vector id) so that a process reads only what it asks
for: the state row and the small scripts and files tables when it opens an index,
and the records of the ids a search returned, instead of a JSON file holding every
chunk text.

Tables (``scene_index_*``) are keyed by ``index_name`` as well, so several indexes can
share one database. The default database is ``<index_dir>/catalog.sqlite``, which keeps
an index directory self-contained (copy, back up or delete it whole); any SQLAlchemy
URL works too, e.g. the bot store's PostgreSQL.

The schema is made with ``create_all`` and guarded by ``CATALOG_FORMAT`` in the state
row, not by Alembic: retrieval must not import ``bot.*``, and the bot store's Alembic
migrations cover the bot's own tables only (its env ignores these). A later change of
these tables bumps ``CATALOG_FORMAT``, and an index of another format asks to be rebuilt.

Consistency: ``new_generation`` opens the one transaction a save writes in. Its first
statement writes the state row (inserted for a new index, otherwise updated only if
it still holds the generation the writer loaded), which takes SQLite's write lock or
PostgreSQL's row lock until the commit: a concurrent save waits or fails instead of
overwriting the vectors files this one is writing, and a save from a stale copy of the
index fails instead of losing the other process's changes.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

CATALOG_FILE = "catalog.sqlite"
CATALOG_FORMAT = 1
DEFAULT_INDEX_NAME = "default"
# Ids per IN (...) list and rows per INSERT batch: well under SQLite's bound-parameter
# limit, and big enough that a search's few hundred ids take one round trip.
IN_BATCH = 900
WRITE_BATCH = 5000
STREAM_BATCH = 2000
SQLITE_BUSY_TIMEOUT_MS = 5000

metadata = MetaData()


def _name() -> Column:
    return Column("index_name", String, primary_key=True)


state_table = Table(
    "scene_index_state", metadata,
    _name(),
    Column("format_version", Integer, nullable=False),
    Column("model_id", String, nullable=False, default=""),
    Column("dim", Integer, nullable=False, default=0),
    Column("kind", String, nullable=False, default="flat"),
    Column("params", JSON, nullable=False),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("deleted", JSON, nullable=False),  # HNSW tombstones: ids still in the graph, no longer in the library
    Column("generation", Integer, nullable=False),
    Column("next_id", BigInteger, nullable=False),
    Column("vectors_file", String, nullable=False, default=""),
    Column("ann_file", String, nullable=False, default=""),
)

# Script facts as columns where every script may have them (filters read them);
# anything else a caller records lands in ``extra``.
SCRIPT_TEXT_FACTS = ("title", "source_path", "format", "language", "licence", "genre", "show")
scripts_table = Table(
    "scene_index_scripts", metadata,
    _name(),
    Column("script_id", String, primary_key=True),
    *(Column(name, String, nullable=True) for name in SCRIPT_TEXT_FACTS),
    Column("authors", JSON, nullable=True),
    Column("extra", JSON, nullable=False),
)

files_table = Table(
    "scene_index_files", metadata,
    _name(),
    Column("source_path", String, primary_key=True),
    Column("content_hash", String, nullable=False),
    Column("script_id", String, nullable=False),
    Index("ix_scene_index_files_script", "index_name", "script_id"),
)

scenes_table = Table(
    "scene_index_scenes", metadata,
    _name(),
    Column("scene_id", String, primary_key=True),  # "<script_id>#<scene_index>"
    Column("script_id", String, nullable=False),
    Column("scene_index", Integer, nullable=False),
    Column("heading", String, nullable=False, default=""),
    Column("text", String, nullable=False, default=""),
    Column("characters", JSON, nullable=False),
    ForeignKeyConstraint(["index_name", "script_id"], ["scene_index_scripts.index_name", "scene_index_scripts.script_id"],
                         ondelete="CASCADE"),
    Index("ix_scene_index_scenes_script", "index_name", "script_id"),
)

CHUNK_TEXT_FIELDS = ("chunk_id", "script_id", "heading", "text", "location", "time_of_day")
chunks_table = Table(
    "scene_index_chunks", metadata,
    _name(),
    Column("vector_id", BigInteger, primary_key=True, autoincrement=False),
    Column("chunk_id", String, nullable=False),
    Column("scene_id", String, nullable=False),
    Column("script_id", String, nullable=False),
    Column("scene_index", Integer, nullable=False),
    Column("heading", String, nullable=False, default=""),
    Column("text", String, nullable=False, default=""),
    Column("characters", JSON, nullable=False),
    Column("location", String, nullable=False, default=""),
    Column("time_of_day", String, nullable=False, default=""),
    ForeignKeyConstraint(["index_name", "scene_id"], ["scene_index_scenes.index_name", "scene_index_scenes.scene_id"],
                         ondelete="CASCADE"),
    Index("ix_scene_index_chunks_script", "index_name", "script_id"),
)


class CatalogError(Exception):
    """The catalog cannot take this read or write as asked (format, concurrent save)."""


@dataclass
class IndexState:
    """The state row: what a generation of the index is made of."""

    model_id: str = ""
    dim: int = 0
    kind: str = "flat"
    params: dict = field(default_factory=dict)
    pinned: bool = False
    deleted: list[int] = field(default_factory=list)
    generation: int = 0
    next_id: int = 0
    vectors_file: str = ""
    ann_file: str = ""


@dataclass
class Snapshot:
    """What opening an index reads, all from one transaction."""

    state: IndexState
    scripts: dict[str, dict]  # script id -> facts
    files: dict[str, dict]  # source path -> {"hash", "script_id"}
    chunks: int  # how many chunk records (must equal the stored vectors)


@dataclass
class Changes:
    """What one save writes, applied in this order: every row of ``removed_scripts``
    goes, then scripts are inserted or replaced, files replaced (None deletes), and new
    scenes and chunks inserted."""

    removed_scripts: set[str] = field(default_factory=set)
    scripts: dict[str, dict] = field(default_factory=dict)
    files: dict[str, dict | None] = field(default_factory=dict)
    scenes: dict[str, dict] = field(default_factory=dict)  # scene id -> {script_id, scene_index, heading, text, characters}
    chunks: dict[int, dict] = field(default_factory=dict)  # vector id -> chunk record


def default_url(index_dir: str | Path) -> URL:
    # Built, not formatted: a "?" or "#" in a folder name must not read as URL syntax.
    return URL.create("sqlite", database=str(Path(index_dir) / CATALOG_FILE))


def make_engine(url: str | URL) -> Engine:
    """An engine for ``url``; a bare postgresql:// gets psycopg (3), the driver shipped."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed)
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL: searches keep reading while a save writes. synchronous=FULL, not the
            # usual NORMAL: a save deletes the previous vectors files right after its
            # commit, so a commit lost to a power cut would leave a state row naming
            # files that are gone.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
        # The sqlite3 module's legacy mode begins no transaction before a SELECT, so the
        # reads that open an index would each see a different commit; let SQLAlchemy
        # emit BEGIN itself (the documented pysqlite recipe).
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Catalog:
    """One index's rows in a catalog database. Closing (or dropping) it closes its connections."""

    def __init__(self, url: str | URL, *, index_name: str = DEFAULT_INDEX_NAME) -> None:
        self.url = url
        self.index_name = index_name
        self.engine = make_engine(url)
        self._finalizer = weakref.finalize(self, self.engine.dispose)

    def close(self) -> None:
        """Close pooled connections (SQLite then folds its WAL back into the file)."""
        self._finalizer()

    # -- schema --------------------------------------------------------------------

    def ensure_schema(self) -> None:
        metadata.create_all(self.engine)

    def has_index(self) -> bool:
        """Whether this index has a saved generation here (creates nothing)."""
        return inspect(self.engine).has_table(state_table.name) and self.generation() is not None

    def _is_mine(self, table: Table):
        return table.c.index_name == self.index_name

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read-only connection whose statements all see one commit."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # -- reading -------------------------------------------------------------------

    def read(self) -> Snapshot | None:
        """The saved state with the scripts and files tables, or None if never saved."""
        if not inspect(self.engine).has_table(state_table.name):
            return None
        with self._snapshot() as conn:
            row = conn.execute(select(state_table).where(self._is_mine(state_table))).mappings().first()
            if row is None:
                return None
            if row["format_version"] != CATALOG_FORMAT:
                raise CatalogError(f"index {self.index_name!r} in the catalog has format {row['format_version']}, "
                                   f"expected {CATALOG_FORMAT}; rebuild the index")
            state = IndexState(**{name: row[name] for name in IndexState.__dataclass_fields__})
            scripts = {r["script_id"]: script_facts(r) for r in
                       conn.execute(select(scripts_table).where(self._is_mine(scripts_table))).mappings()}
            files = {r.source_path: {"hash": r.content_hash, "script_id": r.script_id} for r in
                     conn.execute(select(files_table).where(self._is_mine(files_table)))}
            chunks = conn.execute(select(func.count()).select_from(chunks_table).where(self._is_mine(chunks_table))).scalar_one()
        return Snapshot(state=state, scripts=scripts, files=files, chunks=int(chunks))

    def generation(self) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(state_table.c.generation).where(self._is_mine(state_table))).scalar()

    def records(self, *, vector_ids: Sequence[int]) -> dict[int, dict]:
        """Chunk records (with their scene's text as "scene_text") of the ids that exist."""
        out: dict[int, dict] = {}
        with self.engine.connect() as conn:
            for batch in _batches(vector_ids, IN_BATCH):
                stmt = self._records_query().where(chunks_table.c.vector_id.in_(batch))
                out.update((row["vector_id"], _record(row)) for row in conn.execute(stmt).mappings())
        return out

    def iter_records(self) -> Iterator[tuple[int, dict]]:
        """(vector id, record) of every chunk, ascending id, streamed."""
        stmt = self._records_query().order_by(chunks_table.c.vector_id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=STREAM_BATCH).execute(stmt).mappings():
                yield row["vector_id"], _record(row)

    def iter_chunk_texts(self) -> Iterator[tuple[int, str, str, str]]:
        """(vector id, chunk id, script id, text) of every chunk, ascending id, streamed
        (what BM25 indexes, without the scene texts)."""
        c = chunks_table.c
        stmt = select(c.vector_id, c.chunk_id, c.script_id, c.text).where(self._is_mine(chunks_table)).order_by(c.vector_id)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=STREAM_BATCH).execute(stmt):
                yield int(row.vector_id), row.chunk_id, row.script_id, row.text

    def script_of(self, *, vector_ids: Sequence[int]) -> dict[int, str]:
        """Vector id -> script id, without the texts (to filter before fetching records)."""
        out: dict[int, str] = {}
        with self.engine.connect() as conn:
            for batch in _batches(vector_ids, IN_BATCH):
                stmt = select(chunks_table.c.vector_id, chunks_table.c.script_id).where(
                    self._is_mine(chunks_table), chunks_table.c.vector_id.in_(batch))
                out.update((int(vid), sid) for vid, sid in conn.execute(stmt))
        return out

    def script_vector_ids(self, *, script_id: str) -> list[int]:
        with self.engine.connect() as conn:
            stmt = select(chunks_table.c.vector_id).where(self._is_mine(chunks_table), chunks_table.c.script_id == script_id)
            return [int(vid) for vid in conn.execute(stmt).scalars()]

    def scenes(self, *, scene_ids: Iterable[str]) -> dict[str, dict]:
        """Scene id -> {"heading", "text", "characters"} of the ids that exist."""
        out: dict[str, dict] = {}
        c = scenes_table.c
        with self.engine.connect() as conn:
            for batch in _batches(scene_ids, IN_BATCH):
                stmt = select(c.scene_id, c.heading, c.text, c.characters).where(self._is_mine(scenes_table), c.scene_id.in_(batch))
                out.update((r.scene_id, {"heading": r.heading, "text": r.text, "characters": list(r.characters)})
                           for r in conn.execute(stmt))
        return out

    def counts_per_script(self) -> dict[str, tuple[int, int]]:
        """Script id -> (scenes, chunks)."""
        counts: dict[str, list[int]] = {}
        with self._snapshot() as conn:
            for position, table in enumerate((scenes_table, chunks_table)):
                stmt = select(table.c.script_id, func.count()).where(self._is_mine(table)).group_by(table.c.script_id)
                for script_id, n in conn.execute(stmt):
                    counts.setdefault(script_id, [0, 0])[position] = int(n)
        return {script_id: (scenes, chunks) for script_id, (scenes, chunks) in counts.items()}

    def _records_query(self):
        c, s = chunks_table.c, scenes_table.c
        scene = and_(s.index_name == c.index_name, s.scene_id == c.scene_id)
        return (select(c.vector_id, c.chunk_id, c.script_id, c.scene_index, c.heading, c.text, c.characters, c.location,
                       c.time_of_day, c.scene_id, s.text.label("scene_text"))
                .select_from(chunks_table.outerjoin(scenes_table, scene)).where(self._is_mine(chunks_table)))

    # -- writing -------------------------------------------------------------------

    @contextmanager
    def new_generation(self, state: IndexState, *, expected: int | None) -> Iterator["GenerationWriter"]:
        """The transaction of one save: writes ``state`` first (see the module doc), then
        yields a writer for the metadata; commits when the block ends, rolls back if it raises.

        ``expected`` is the generation the caller loaded, or None for an index never saved.
        """
        self.ensure_schema()
        with self.engine.begin() as conn:
            self._claim(conn, state, expected=expected)
            yield GenerationWriter(conn, self.index_name)

    def _claim(self, conn: Connection, state: IndexState, *, expected: int | None) -> None:
        row = _state_row(state)
        try:
            if expected is None:
                conn.execute(insert(state_table).values(index_name=self.index_name, **row))
                return
            result = conn.execute(update(state_table).where(self._is_mine(state_table),
                                                            state_table.c.generation == expected).values(row))
        except IntegrityError:
            raise CatalogError(f"an index named {self.index_name!r} already exists in the catalog; "
                               "load it instead of starting a new one") from None
        except OperationalError as exc:
            if "locked" in str(exc.orig):  # SQLite's busy timeout ran out behind another writer
                raise CatalogError(f"another process is saving index {self.index_name!r}; try again when it is done") from None
            raise
        if result.rowcount != 1:
            raise CatalogError(f"index {self.index_name!r} was saved by another process since this copy was loaded "
                               f"(generation {expected}); load it again and redo the change")


class GenerationWriter:
    """Writes ``Changes`` inside ``Catalog.new_generation``'s transaction."""

    def __init__(self, conn: Connection, index_name: str) -> None:
        self.conn = conn
        self.index_name = index_name

    def apply(self, changes: Changes) -> None:
        self.remove_scripts(changes.removed_scripts)
        self.put_scripts(changes.scripts)
        self.put_files(changes.files)
        self.insert_scenes(changes.scenes)
        self.insert_chunks(changes.chunks)

    def remove_scripts(self, script_ids: Iterable[str]) -> None:
        # Children first: the foreign keys would cascade, but not every database enforces them.
        for batch in _batches(sorted(script_ids), IN_BATCH):
            for table in (chunks_table, scenes_table, files_table, scripts_table):
                self.conn.execute(delete(table).where(table.c.index_name == self.index_name, table.c.script_id.in_(batch)))

    def put_scripts(self, scripts: dict[str, dict]) -> None:
        if not scripts:
            return
        c = scripts_table.c
        present: set[str] = set()
        for batch in _batches(scripts, IN_BATCH):
            present.update(self.conn.execute(select(c.script_id).where(c.index_name == self.index_name,
                                                                       c.script_id.in_(batch))).scalars())
        rows = [{"index_name": self.index_name, "script_id": sid, **script_row(info)} for sid, info in scripts.items()]
        new = [row for row in rows if row["script_id"] not in present]
        for batch in _batches(new, WRITE_BATCH):
            self.conn.execute(insert(scripts_table), batch)
        for row in rows:
            if row["script_id"] in present:
                self.conn.execute(update(scripts_table).where(c.index_name == self.index_name, c.script_id == row["script_id"])
                                  .values({k: v for k, v in row.items() if k not in ("index_name", "script_id")}))

    def put_files(self, files: dict[str, dict | None]) -> None:
        c = files_table.c
        for batch in _batches(files, IN_BATCH):
            self.conn.execute(delete(files_table).where(c.index_name == self.index_name, c.source_path.in_(batch)))
        rows = [{"index_name": self.index_name, "source_path": path, "content_hash": info["hash"],
                 "script_id": info["script_id"]} for path, info in files.items() if info is not None]
        for batch in _batches(rows, WRITE_BATCH):
            self.conn.execute(insert(files_table), batch)

    def insert_scenes(self, scenes: dict[str, dict]) -> None:
        rows = ({"index_name": self.index_name, "scene_id": scene_id, "script_id": scene["script_id"],
                 "scene_index": int(scene["scene_index"]), "heading": scene.get("heading", ""),
                 "text": scene.get("text", ""), "characters": list(scene.get("characters", ()))}
                for scene_id, scene in scenes.items())
        for batch in _batches(rows, WRITE_BATCH):
            self.conn.execute(insert(scenes_table), batch)

    def insert_chunks(self, chunks: dict[int, dict]) -> None:
        rows = ({"index_name": self.index_name, "vector_id": int(vid), "scene_index": int(rec["scene_index"]),
                 "scene_id": f"{rec['script_id']}#{rec['scene_index']}", "characters": list(rec.get("characters", ())),
                 **{name: rec.get(name, "") for name in CHUNK_TEXT_FIELDS}}
                for vid, rec in chunks.items())
        for batch in _batches(rows, WRITE_BATCH):
            self.conn.execute(insert(chunks_table), batch)


def script_row(info: dict) -> dict:
    """Script facts -> column values; what has no column of its type goes to ``extra``."""
    row: dict[str, Any] = {name: None for name in SCRIPT_TEXT_FACTS}
    row["authors"] = None
    extra = {}
    for key, value in info.items():
        if key in SCRIPT_TEXT_FACTS and (value is None or isinstance(value, str)):
            row[key] = value
        elif key == "authors" and isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
            row[key] = list(value)
        else:
            extra[key] = value
    row["extra"] = extra
    return row


def script_facts(row) -> dict:
    """The inverse of ``script_row``: the facts that were recorded (unset columns left out)."""
    facts = {name: row[name] for name in (*SCRIPT_TEXT_FACTS, "authors") if row[name] is not None}
    facts.update(row["extra"] or {})
    return facts


def _state_row(state: IndexState) -> dict:
    row = {name: getattr(state, name) for name in IndexState.__dataclass_fields__}
    row["deleted"] = sorted(int(i) for i in state.deleted)
    row["format_version"] = CATALOG_FORMAT
    return row


def _record(row) -> dict:
    return {"chunk_id": row["chunk_id"], "script_id": row["script_id"], "scene_index": int(row["scene_index"]),
            "heading": row["heading"], "text": row["text"], "characters": list(row["characters"]),
            "location": row["location"], "time_of_day": row["time_of_day"], "scene_id": row["scene_id"],
            "scene_text": row["scene_text"] or ""}
