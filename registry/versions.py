"""The adapter registry on disk: training writes it, the backend (and the bot) read it.

Layout under `settings.adapter_dir` (HOME/adapters)::

    <registry>/<version>/adapter_config.json        PEFT's files, exactly what PEFT and
    <registry>/<version>/adapter_model.safetensors  vLLM's LoRA loader read
    <registry>/<version>/writersroom-adapter.json   our manifest (written last)
    <registry>/serving.json                         which version each room is served

Why files and not a database: the backend may run on another host (a GPU node, a k8s
pod) that shares only a volume with training, and vLLM reads the same directories.
Versions are immutable: a version is written into a hidden temporary directory and
renamed into place in one step, so readers never see half an adapter. The serving
pointer is replaced atomically (temp file + fsync + os.replace) and keeps a history,
which is what makes rollback one command.

Pure standard library on purpose: the bot process reads the pointer too, and it never
imports torch.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from files.durable import fsync_dir

try:  # serialises concurrent promote/rollback; POSIX only, which is where we deploy
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST = "writersroom-adapter.json"
POINTER = "serving.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
HISTORY_LIMIT = 100  # pointer changes kept for rollback; older ones are dropped

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_RESERVED = {POINTER}  # a version directory must not shadow the pointer file
_LOCK_FILE = ".serving.lock"


class RegistryError(Exception):
    """A registry operation was refused; the message names the version and why."""


def registry_dir(settings: Any) -> Path:
    """Where the registry lives: Settings.adapter_dir (HOME/adapters)."""
    return Path(settings.adapter_dir)


def validate_version_name(version: str) -> str:
    """Return `version` if it is a safe directory and model name, else raise RegistryError.

    Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most
    64 characters: no path separators, no '..' tricks, no hidden names (those are our
    temporary directories) and nothing an OpenAI model name or a URL would mangle.
    """
    if not isinstance(version, str) or not _NAME.fullmatch(version) or version in _RESERVED:
        raise RegistryError(
            f"invalid adapter version name {version!r}: use 1-64 characters of [a-z0-9._-] "
            f"starting with a letter or digit (and not {POINTER!r})"
        )
    return version


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class AdapterManifest:
    """What an adapter was trained from and how it scored (artifacts carry their config)."""

    version: str
    base_model: str  # the served base model's name (backend.serve.model_name)
    created_at: str  # ISO 8601, UTC
    training: dict[str, Any] = field(default_factory=dict)  # the training settings used
    data_hash: str = ""  # hash of the approved examples it was trained on
    example_count: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation-gate scores
    room: str | None = None  # set when trained on one room's data only

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> "AdapterManifest":
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: manifest is not a JSON object")
        try:
            manifest = cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
        except TypeError as exc:
            raise RegistryError(f"{where}: manifest is missing a field ({exc})") from None
        manifest.check(where=where)
        return manifest

    def check(self, *, where: str) -> None:
        problems = []
        if not isinstance(self.base_model, str) or not self.base_model:
            problems.append("base_model must be a non-empty string")
        if not isinstance(self.created_at, str):
            problems.append("created_at must be an ISO string")
        if not isinstance(self.training, dict) or not isinstance(self.metrics, dict):
            problems.append("training and metrics must be objects")
        if not isinstance(self.example_count, int) or self.example_count < 0:
            problems.append("example_count must be a non-negative integer")
        if self.room is not None and (not isinstance(self.room, str) or not self.room):
            problems.append("room must be a non-empty string or null")
        if problems:
            raise RegistryError(f"{where}: " + "; ".join(problems))


@dataclass(frozen=True)
class AdapterVersion:
    """One complete version directory of the registry."""

    version: str
    path: Path
    manifest: AdapterManifest


@dataclass(frozen=True)
class ServingPointer:
    """serving.json: the version served by default and per room, plus the change history."""

    default: str | None = None
    rooms: dict[str, str] = field(default_factory=dict)
    previous: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    updated_at: str | None = None

    def version_for(self, room: str | None = None) -> str | None:
        """The version a room should get: its own, else the default (None: the base model)."""
        if room is not None and room in self.rooms:
            return self.rooms[room]
        return self.default

    def versions_in_use(self) -> set[str]:
        return {v for v in [self.default, *self.rooms.values()] if v}


# ---- reading ---------------------------------------------------------------------------

def read_manifest(directory: Path) -> AdapterManifest:
    """The manifest of a version directory; RegistryError if missing, unreadable or invalid."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"adapter version {directory.name!r} has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f"adapter version {directory.name!r}: unreadable {MANIFEST} ({exc})") from None
    manifest = AdapterManifest.from_dict(data, where=f"adapter version {directory.name!r}")
    if manifest.version != directory.name:
        raise RegistryError(
            f"adapter version {directory.name!r}: manifest says version {manifest.version!r}"
        )
    return manifest


def _complete(directory: Path) -> AdapterVersion | None:
    """The version in `directory`, or None while it is incomplete, hidden or invalid."""
    name = directory.name
    if not _NAME.fullmatch(name) or name in _RESERVED or not directory.is_dir():
        return None
    if not all((directory / part).is_file() for part in (*ADAPTER_FILES, MANIFEST)):
        return None
    try:
        return AdapterVersion(name, directory, read_manifest(directory))
    except RegistryError:
        return None


def list_versions(registry: Path) -> list[AdapterVersion]:
    """Complete versions, oldest first. Hidden (temporary) and partial directories are skipped."""
    registry = Path(registry)
    if not registry.is_dir():
        return []
    found = [v for v in (_complete(child) for child in registry.iterdir()) if v is not None]
    return sorted(found, key=lambda v: (v.manifest.created_at, v.version))


def get_version(registry: Path, version: str) -> AdapterVersion:
    """One complete version, or RegistryError naming it."""
    validate_version_name(version)
    found = _complete(Path(registry) / version)
    if found is None:
        raise RegistryError(f"adapter version {version!r} is not in the registry {registry} (or is incomplete)")
    return found


def serving(registry: Path) -> ServingPointer:
    """The current pointer; an empty one (base model everywhere) when none was written yet."""
    path = Path(registry) / POINTER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ServingPointer()
    except (OSError, ValueError) as exc:
        raise RegistryError(f"unreadable serving pointer {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("rooms", {}), dict):
        raise RegistryError(f"serving pointer {path} is not a valid object")
    return ServingPointer(default=data.get("default"), rooms=dict(data.get("rooms", {})),
                          previous=list(data.get("previous", [])), updated_at=data.get("updated_at"))


# ---- writing ---------------------------------------------------------------------------

def _write_json_atomic(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never a torn one, even after a crash."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _export_peft_model(model: Any, target: Path, adapter_name: str | None) -> None:
    """Save one adapter of a PeftModel and lift its two files into `target`.

    PEFT saves adapters not named "default" into a sub-directory, so search for them.
    """
    name = adapter_name or getattr(model, "active_adapter", "default")
    scratch = target / ".peft-save"
    model.save_pretrained(str(scratch), safe_serialization=True, selected_adapters=[name])
    configs = list(scratch.rglob(ADAPTER_FILES[0]))
    if len(configs) != 1:
        raise RegistryError(f"PEFT saved {len(configs)} adapter configs for adapter {name!r}; expected one")
    for part in ADAPTER_FILES:
        os.replace(configs[0].parent / part, target / part)
    shutil.rmtree(scratch)


def _check_adapter_files(directory: Path, version: str) -> None:
    missing = [part for part in ADAPTER_FILES if not (directory / part).is_file()]
    if missing:
        raise RegistryError(f"adapter version {version!r}: source lacks {', '.join(missing)}")
    try:
        config = json.loads((directory / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"adapter version {version!r}: unreadable adapter_config.json ({exc})") from None
    if config.get("peft_type") != "LORA":  # vLLM serves LoRA only
        raise RegistryError(f"adapter version {version!r}: peft_type is {config.get('peft_type')!r}, not 'LORA'")


def write_adapter_version(
    registry: Path,
    version: str,
    *,
    source: Path | str | Any,
    base_model: str,
    training: dict[str, Any] | None = None,
    data_hash: str = "",
    example_count: int = 0,
    metrics: dict[str, Any] | None = None,
    room: str | None = None,
    created_at: str | None = None,
    adapter_name: str | None = None,
) -> AdapterVersion:
    """Add an immutable version to the registry, all at once.

    `source` is a directory holding PEFT's adapter_config.json + adapter_model.safetensors,
    or a PeftModel (its `adapter_name`, default the active one, is saved). Everything is
    written into a hidden temporary directory, fsynced, and renamed into place, so the
    backend's watcher either sees the whole version or nothing.
    """
    validate_version_name(version)
    registry = Path(registry)
    registry.mkdir(parents=True, exist_ok=True)
    final = registry / version
    if final.exists():
        raise RegistryError(f"adapter version {version!r} already exists in {registry}; versions are immutable")
    manifest = AdapterManifest(version=version, base_model=base_model, created_at=created_at or _now(),
                               training=dict(training or {}), data_hash=data_hash, example_count=example_count,
                               metrics=dict(metrics or {}), room=room)
    manifest.check(where=f"adapter version {version!r}")
    staging = registry / f".tmp-{version}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        if isinstance(source, (str, os.PathLike)):
            _check_adapter_files(Path(source), version)
            for part in ADAPTER_FILES:
                shutil.copyfile(Path(source) / part, staging / part)
        else:
            _export_peft_model(source, staging, adapter_name)
        _check_adapter_files(staging, version)
        try:
            text = json.dumps(asdict(manifest), indent=2, sort_keys=True)
        except TypeError as exc:
            raise RegistryError(f"adapter version {version!r}: manifest is not JSON-serialisable ({exc})") from None
        (staging / MANIFEST).write_text(text + "\n", encoding="utf-8")
        for part in (*ADAPTER_FILES, MANIFEST):
            _fsync_file(staging / part)
        try:
            os.rename(staging, final)  # fails if another writer got there first
        except OSError as exc:
            raise RegistryError(f"adapter version {version!r} could not be published: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    fsync_dir(registry)
    return AdapterVersion(version, final, manifest)


def remove_version(registry: Path, version: str) -> None:
    """Delete a version that no room is served; it disappears in one rename, then is erased."""
    registry = Path(registry)
    get_version(registry, version)
    with _pointer_lock(registry):
        if version in serving(registry).versions_in_use():
            raise RegistryError(f"adapter version {version!r} is being served; promote another version first")
        doomed = registry / f".deleting-{version}-{secrets.token_hex(4)}"
        os.rename(registry / version, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# ---- the serving pointer ---------------------------------------------------------------

@contextmanager
def _pointer_lock(registry: Path) -> Iterator[None]:
    """One promote/rollback at a time (two trainers, or an operator and the scheduler)."""
    registry.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(registry / _LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _save_pointer(registry: Path, pointer: ServingPointer) -> ServingPointer:
    pointer = ServingPointer(default=pointer.default, rooms=dict(sorted(pointer.rooms.items())),
                             previous=pointer.previous[-HISTORY_LIMIT:], updated_at=_now())
    _write_json_atomic(registry / POINTER, asdict(pointer))
    return pointer


def _set(pointer: ServingPointer, room: str | None, version: str | None) -> ServingPointer:
    rooms = dict(pointer.rooms)
    if room is None:
        return ServingPointer(default=version, rooms=rooms, previous=pointer.previous)
    if version is None:
        rooms.pop(room, None)
    else:
        rooms[room] = version
    return ServingPointer(default=pointer.default, rooms=rooms, previous=pointer.previous)


def promote(registry: Path, version: str | None, *, room: str | None = None) -> ServingPointer:
    """Serve `version` by default (or to one room); None means the base model (or the room's
    override removed). The replaced value goes into the history for rollback()."""
    registry = Path(registry)
    with _pointer_lock(registry):  # held while checking, so remove_version cannot interleave
        if version is not None:
            _check_promotable(get_version(registry, version), room)
        current = serving(registry)
        before = current.rooms.get(room) if room is not None else current.default
        if before == version:
            return current
        entry = {"room": room, "version": before, "replaced_by": version, "at": _now()}
        changed = _set(current, room, version)
        changed = ServingPointer(default=changed.default, rooms=changed.rooms, previous=[*current.previous, entry])
        return _save_pointer(registry, changed)


def _check_promotable(found: AdapterVersion, room: str | None) -> None:
    """A room's adapter learnt from that room's scenes only: serving it elsewhere would leak them."""
    if found.manifest.room is not None and found.manifest.room != room:
        raise RegistryError(
            f"adapter version {found.version!r} was trained on room {found.manifest.room!r}'s material only; "
            f"promote it to that room, not to {'all rooms' if room is None else repr(room)}"
        )


def rollback(registry: Path, *, room: str | None = None) -> ServingPointer:
    """Undo the latest promotion of the default (or of one room), consuming its history entry,
    so repeated rollbacks walk further back instead of toggling."""
    registry = Path(registry)
    with _pointer_lock(registry):
        current = serving(registry)
        index = next((i for i in range(len(current.previous) - 1, -1, -1)
                      if current.previous[i].get("room") == room), None)
        where = "the default" if room is None else f"room {room!r}"
        if index is None:
            raise RegistryError(f"nothing to roll back for {where}: no earlier version in the history")
        target = current.previous[index].get("version")
        if target is not None and _complete(registry / str(target)) is None:
            raise RegistryError(f"cannot roll back {where} to adapter version {target!r}: it is no longer in the registry")
        history = current.previous[:index] + current.previous[index + 1:]
        changed = _set(current, room, target)
        return _save_pointer(registry, ServingPointer(default=changed.default, rooms=changed.rooms, previous=history))
