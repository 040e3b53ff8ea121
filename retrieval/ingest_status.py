"""How far a library load has got: a small JSON file in the index directory.

An ingest run that loads a library in the background (``writersroom start`` on first run)
saves the index every so often and, after each save, writes here how many of its files are
done: what a searcher loaded from the index holds. A file, not a process global, because
the reader may be another process (a bot beside an ingest job) and because a load cut short
(Ctrl-C, a crash) has to be known at the next start, which then finishes it.

    {"state": "loading", "files_done": 12, "files_total": 40, "pid": 4711, "host": "studio-3"}

"stopped" is a load that ended before its last file; a "loading" file whose process is gone
(same host, pid not running) reads as "stopped" too.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

STATUS_FILE = "library-load.json"
STATES = ("loading", "done", "stopped")


@dataclass(frozen=True)
class LibraryLoad:
    state: str  # one of STATES
    files_done: int
    files_total: int
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    @property
    def loading(self) -> bool:
        return self.state == "loading"

    @property
    def unfinished(self) -> bool:
        """Loading now, or stopped before its last file."""
        return self.state != "done"

    @property
    def percent(self) -> int:
        return 100 if not self.files_total else int(100 * self.files_done / self.files_total)

    def progress(self) -> str:
        """'12 of 40 scripts indexed so far' (files, of which a few may turn out not to be scripts)."""
        return f"{self.files_done} of {self.files_total} scripts indexed so far"


def status_path(index_dir: str | Path) -> Path:
    return Path(index_dir) / STATUS_FILE


def write_status(index_dir: str | Path, load: LibraryLoad) -> None:
    """Replace the status file atomically (a reader never sees half of it)."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=index_dir, prefix=f".{STATUS_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(load), fh)
        os.replace(tmp, status_path(index_dir))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(index_dir: str | Path) -> LibraryLoad | None:
    """The last status written in ``index_dir``; None when there is none (or it is unreadable:
    a status is a courtesy to the reader, never a reason to fail a search)."""
    try:
        raw = json.loads(status_path(index_dir).read_text(encoding="utf-8"))
        load = LibraryLoad(state=str(raw["state"]), files_done=int(raw["files_done"]),
                           files_total=int(raw["files_total"]), pid=int(raw.get("pid", 0)), host=str(raw.get("host", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if load.state not in STATES:
        return None
    if load.loading and load.host == socket.gethostname() and not _running(load.pid):
        return replace(load, state="stopped")
    return load


def _running(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True
