"""LoRA adapters loaded into the running backend, kept in step with the registry.

Every registry version is served under its own model name next to the base model's
name (as vLLM does with multi-LoRA), so a new adapter goes live by being written to the
registry and rolls back by moving the pointer: no restart, no second copy of the base.

How the generation loop uses it (mixed batches)
-----------------------------------------------
* Map each request's `model` with `resolve(name)` (None = base, KeyError = unknown ->
  404 model_not_found). Better, `acquire(name)` at admission and `release(version)` when
  the request finishes: a pinned version is not unloaded mid-sequence by sync().
* Run every decode step through `forward(rows, **model_inputs)`, where `rows[i]` is row
  i's version or None. It holds `lock` for the step and passes PEFT's
  `adapter_names=[...]` ("__base__" for base rows), so one batch can mix the base model
  and any number of adapters; each row gets exactly the logits it would get alone
  (tested for prefill, a cached decode step and HF generate).
* A loop that makes its own forward call does the same by hand: inside `with lock:`
  read `model` (it becomes a PeftModel with the first adapter and the plain model again
  after the last is unloaded) and, when `is_peft`, pass
  `adapter_names=adapter_names(rows)`: PEFT's names ("wr_v2D1"), not the versions.
  Never call the bare transformers model once an adapter is loaded: PEFT injects its
  LoRA layers into that very model, so a direct call applies the active adapter.
* If the loop calls HF `generate` instead, hold `lock` around it and pass the same
  `adapter_names=` to `model.generate`.

Why the lock: PEFT adds and removes modules in place. sync() (the watcher thread) takes
the same RLock in load/unload, so an adapter never appears or disappears inside a
forward pass; holding it per decode step (not per request) lets a swap happen between
steps within milliseconds.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from registry.versions import (
    RegistryError,
    ServingPointer,
    get_version,
    list_versions,
    serving,
    validate_version_name,
    write_adapter_version,
)

log = logging.getLogger(__name__)

BASE_ROW = "__base__"  # PEFT's name for "no adapter" in adapter_names


def peft_adapter_name(version: str) -> str:
    """The name a version is loaded under inside PEFT.

    Not the version itself: torch module names cannot contain '.', and a bare name like
    "forward" or "training" would clash with a module attribute. Version names have no
    upper case, so mapping '.' to 'D' behind a prefix is one-to-one ("v2.1" -> "wr_v2D1").
    """
    return "wr_" + validate_version_name(version).replace(".", "D")


@dataclass
class SyncReport:
    """What one sync() changed; empty when the registry and the backend already agree."""

    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # version -> why (logged once)
    deferred: list[str] = field(default_factory=list)  # removed but still used by requests

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.unloaded)


class AdapterSet:
    """The base model plus the registry versions loaded into it, under one lock."""

    def __init__(self, base_model: Any, *, registry: Path, base_name: str, base_model_id: str | None = None) -> None:
        self.lock = threading.RLock()
        self.registry = Path(registry)
        self.base_name = base_name
        # What an adapter's manifest must name as base_model: the served base model.
        self.base_model_id = base_model_id or base_name
        self._base = base_model
        self._model = base_model  # becomes the PeftModel with the first adapter
        self._loaded: dict[str, str] = {}  # version -> PEFT adapter name
        self._pins: Counter[str] = Counter()
        self._refused: dict[str, str] = {}
        self._pointer = ServingPointer()
        self._sync_lock = threading.Lock()
        self._watcher: _Watcher | None = None

    # ---- what is served ----------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The model to run: the base model, or the PeftModel wrapping it."""
        return self._model

    @property
    def is_peft(self) -> bool:
        return self._model is not self._base

    def names(self) -> list[str]:
        """Model names to list in /v1/models: the base name first, then loaded versions."""
        with self.lock:
            return [self.base_name, *sorted(self._loaded)]

    def resolve(self, model_name: str) -> str | None:
        """The version serving `model_name`, None for the base model; KeyError if unknown."""
        if model_name == self.base_name:
            return None
        with self.lock:
            if model_name in self._loaded:
                return model_name
        raise KeyError(model_name)

    def acquire(self, model_name: str) -> str | None:
        """resolve() and pin the version until release(), so sync() cannot unload it mid-request."""
        with self.lock:
            version = self.resolve(model_name)
            if version is not None:
                self._pins[version] += 1
            return version

    def release(self, version: str | None) -> None:
        if version is None:
            return
        with self.lock:
            self._pins[version] -= 1
            if self._pins[version] <= 0:
                del self._pins[version]

    def serving_name(self, room: str | None = None) -> str:
        """The model name clients should use now: the pointer's version (as read by the last
        sync()) when it is loaded, else the base model (a pointer to a refused or missing
        version must not break rooms)."""
        version = self._pointer.version_for(room)
        with self.lock:
            return version if version in self._loaded else self.base_name

    def peft_name(self, version: str) -> str:
        """PEFT's name of a loaded version (KeyError if it is not loaded)."""
        with self.lock:
            return self._loaded[version]

    # ---- running ---------------------------------------------------------------------------

    def adapter_names(self, rows: Sequence[str | None]) -> list[str]:
        """PEFT's `adapter_names` for a batch whose row i uses version rows[i] (None: base)."""
        with self.lock:
            return [BASE_ROW if row is None else self._loaded[row] for row in rows]

    def forward(self, rows: Sequence[str | None], **model_inputs: Any) -> Any:
        """One forward pass (a decode step) of a batch mixing base and adapter rows."""
        with self.lock:
            if not self.is_peft:
                unknown = [row for row in rows if row is not None]
                if unknown:
                    raise KeyError(unknown[0])
                return self._base(**model_inputs)
            return self._model(**model_inputs, adapter_names=self.adapter_names(rows))

    # ---- loading -------------------------------------------------------------------------

    def load(self, version: str) -> None:
        """Load one registry version under its own name; RegistryError if it is refused."""
        validate_version_name(version)
        if version == self.base_name:
            raise RegistryError(f"adapter version {version!r} has the base model's name")
        found = get_version(self.registry, version)
        if found.manifest.base_model != self.base_model_id:
            raise RegistryError(
                f"adapter version {version!r} was trained on base model {found.manifest.base_model!r}, "
                f"but this backend serves {self.base_model_id!r}"
            )
        with self.lock:
            if version in self._loaded:
                return
            name = peft_adapter_name(version)
            try:
                self._attach(found.path, name)
            except Exception as exc:
                self._detach_after_failure(name)
                raise RegistryError(f"adapter version {version!r} failed to load: {type(exc).__name__}: {exc}") from exc
            self._loaded[version] = name
            self._refused.pop(version, None)
        log.info("adapter %s loaded (as %s) from %s", version, name, found.path)

    def _attach(self, path: Path, name: str) -> None:
        device = str(next(self._base.parameters()).device)
        if self.is_peft:
            self._model.load_adapter(str(path), adapter_name=name, torch_device=device)
            return
        from peft import PeftConfig, PeftModelForCausalLM

        # Wrap first, then load weights (not PeftModel.from_pretrained): if the weights do not
        # fit, the wrapper exists to undo the injected layers, and the base stays clean.
        config = PeftConfig.from_pretrained(str(path))
        config.inference_mode = True
        self._model = PeftModelForCausalLM(self._base, config, adapter_name=name)
        self._model.eval()  # PEFT refuses adapter_names in training mode
        self._model.load_adapter(str(path), adapter_name=name, torch_device=device)

    def _detach_after_failure(self, name: str) -> None:
        """Undo what a failed load injected, so the served model stays as it was."""
        if not self.is_peft:
            return
        if name in getattr(self._model, "peft_config", {}):
            self._drop(name)
        elif not self._loaded:
            self._unwrap()

    def unload(self, version: str) -> None:
        """Remove a version from the model (its LoRA weights only; the base is untouched)."""
        with self.lock:
            name = self._loaded.pop(version, None)
            if name is None:
                raise KeyError(version)
            self._drop(name)
        log.info("adapter %s unloaded", version)

    def _drop(self, name: str) -> None:
        others = [n for n in self._model.peft_config if n != name]
        if not others:
            # PEFT cannot run with zero adapters left; give the plain base model back instead.
            self._unwrap()
            return
        if name in self._model.active_adapters:
            self._model.set_adapter(others[0], inference_mode=True)
        self._model.delete_adapter(name)

    def _unwrap(self) -> None:
        self._base = self._model.unload()  # removes LoRA layers without merging them
        self._model = self._base

    # ---- keeping in step with the registry ---------------------------------------------

    def sync(self) -> SyncReport:
        """Load complete versions that are new, unload versions gone from the registry.

        Versions whose base model differs, or that failed to load, are refused once with a
        warning and not retried until they leave the registry (versions are immutable).
        """
        report = SyncReport()
        with self._sync_lock:
            try:
                self._pointer = serving(self.registry)
            except RegistryError as exc:
                log.warning("keeping the previous serving pointer: %s", exc)
            present = {v.version for v in list_versions(self.registry)}  # disk I/O outside self.lock
            with self.lock:
                loaded = set(self._loaded)
            for version in sorted(present - loaded - set(self._refused)):
                try:
                    self.load(version)
                    report.loaded.append(version)
                except RegistryError as exc:
                    self._refused[version] = str(exc)
                    report.refused[version] = str(exc)
                    log.warning("adapter refused: %s", exc)
            for version in set(self._refused) - present:
                del self._refused[version]
            for version in sorted(loaded - present):
                with self.lock:
                    if self._pins[version] > 0:
                        report.deferred.append(version)
                        continue
                    self.unload(version)
                report.unloaded.append(version)
        return report

    def start_watcher(self, interval_s: float = 10.0) -> "_Watcher":
        """Run sync() every `interval_s` seconds in a daemon thread (one watcher per set).

        Polling rather than inotify: the registry is often a network or k8s volume (NFS,
        CSI, a ConfigMap-style symlink swap) where inotify misses writes made by another
        host, and a listing every few seconds costs nothing next to generation.
        """
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = _Watcher(self, interval_s)
            self._watcher.start()
        return self._watcher

    def stop_watcher(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None


def serve_from_scratch(generator: Any, registry: Path, sources: dict[str, Path], *, base_name: str) -> AdapterSet:
    """Serve LoRA adapters (version -> PEFT directory) on ``generator``'s model from a registry of
    their own, written afresh at ``registry``, every version loaded: how the training gate and the
    scene benchmark run an adapter on the serving code path without touching the real registry."""
    for version, source in sources.items():
        write_adapter_version(registry, version, source=source, base_model=base_name)
    adapters = AdapterSet(generator.model, registry=registry, base_name=base_name)
    generator.attach_adapters(adapters)
    for version in sources:
        adapters.load(version)
    return adapters


class _Watcher(threading.Thread):
    def __init__(self, adapters: AdapterSet, interval_s: float) -> None:
        super().__init__(name="adapter-watcher", daemon=True)
        self.adapters = adapters
        self.interval_s = interval_s
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                report = self.adapters.sync()
                if report.changed:
                    log.info("adapters synced: loaded %s, unloaded %s", report.loaded, report.unloaded)
            except Exception:  # a bad registry entry must not stop hot swapping for good
                log.exception("adapter sync failed; retrying in %.1fs", self.interval_s)
            self._stopped.wait(self.interval_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        if threading.current_thread() is not self:
            self.join(timeout)
