"""Keep a vLLM server's LoRA adapters equal to the adapter registry's complete versions.

    writersroom adapters vllm-sync --url http://vllm:8000/v1 [--adapter-root /adapters]
                                   [--watch SECONDS] [--max-lora-rank 16] [--json]

Where vLLM serves generation (a GPU cluster), every registry version is a LoRA there under
its version name; the bot asks for a version only once vLLM's /v1/models lists it
(bot.core.services.model_for), so a version this has not loaded yet falls back to the base
model. vLLM must run with --enable-lora, VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (which adds
the load/unload routes), --max-lora-rank at least training.lora_r, and --api-key equal to
backend.api_key when that is set.

vLLM's API, as read in vllm-project/vllm's sources (main of 2026: entrypoints/openai/models/
serving.py at 00153c8b, entrypoints/serve/lora/api_router.py at 27873cab, engine/protocol.py;
compared with the v0.7-era entrypoints/openai/serving_models.py) and the LoRA docs page
"Dynamically serving LoRA Adapters". The routes exist since v0.6.1; what changed since is
the error body (nested from v0.10.1, vLLM PR #22099) and the loader-failure status:
- POST /v1/load_lora_adapter {"lora_name", "lora_path"}: 200 text; 400 InvalidUserInput when
  the name is loaded already; 404 NotFoundError "No adapter found for PATH"; 400 (500 on the
  newest main) with the loader's message for an adapter it refuses, e.g. "LoRA rank 32 is
  greater than max_lora_rank 16.";
- POST /v1/unload_lora_adapter {"lora_name"}: 200 text; 404 NotFoundError when not loaded;
- GET /v1/models: the base model (parent null) and each LoRA (id = lora_name, root =
  lora_path, parent = the base model's name);
- errors: {"error": {"message", "type", "param", "code"}} since v0.10.1, flat
  {"object": "error", "message", "type", ...} before; both are read. Without
  VLLM_ALLOW_RUNTIME_LORA_UPDATING the routes are missing: FastAPI's 404 {"detail": "Not Found"}.

Which loaded LoRAs are ours: exactly those this command would have loaded, i.e. whose
path is <adapter root>/<name>. Only those are unloaded when their version leaves the
registry; the base model (parent null) and an adapter an admin loaded from anywhere else
stay. A name pattern cannot tell them apart (training names versions r0001-<hash>, older
ones v2026...-..., and any [a-z0-9._-] name is valid), the path can.

Standard library and httpx only: this runs in the slim bot image, which has no torch.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from registry.versions import ADAPTER_FILES, AdapterVersion, list_versions


class VllmError(Exception):
    """vLLM refused or could not be asked; the message is one line fit to show an operator.

    `whole_round` errors (unreachable, wrong key, no load route) end the round: every
    further request would fail the same way.
    """

    def __init__(self, message: str, *, whole_round: bool = False) -> None:
        super().__init__(message)
        self.whole_round = whole_round


def api_base(url: str) -> str:
    """The /v1 base of vLLM's OpenAI server, from it or from the server's root URL."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def version_path(adapter_root: str, version: str) -> str:
    """Where vLLM reads a version: vLLM runs on Linux, so POSIX paths whatever runs this."""
    return posixpath.join(posixpath.normpath(adapter_root), version)


class VllmClient:
    """The three vLLM routes this needs, over one HTTP connection pool."""

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = api_base(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Loading an adapter reads it from disk onto the GPU: seconds, so a long read timeout;
        # a short connect timeout so that a server that is down is reported at once.
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0),
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[dict[str, Any]]:
        response = self._send("GET", "/models")
        if response.status_code != 200:
            raise _refused("list models", response, whole_round=True)
        try:
            return list(response.json()["data"])
        except (ValueError, KeyError, TypeError):
            raise VllmError(f"vLLM at {self.base_url}: /v1/models is not an OpenAI model list",
                            whole_round=True) from None

    def load(self, name: str, path: str) -> bool:
        response = self._send("POST", "/load_lora_adapter", {"lora_name": name, "lora_path": path})
        if response.status_code == 404 and _is_missing_route(response):
            raise _no_lora_routes(self.base_url)
        if response.status_code == 404:
            raise VllmError(f"load {name}: vLLM found no adapter at {path}; is the registry mounted there in "
                            f"vLLM's container? (--adapter-root) [{_error_text(response)}]")
        if response.status_code != 200:
            raise _refused(f"load {name} from {path}", response)
        return True

    def unload(self, name: str) -> bool:
        """True when vLLM unloaded it, False when it was not loaded (404: gone already)."""
        response = self._send("POST", "/unload_lora_adapter", {"lora_name": name})
        if response.status_code == 404 and _is_missing_route(response):
            raise _no_lora_routes(self.base_url)
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise _refused(f"unload {name}", response)
        return True

    def _send(self, method: str, route: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, self.base_url + route, json=body)
        except httpx.TimeoutException:
            raise VllmError(f"vLLM at {self.base_url} did not answer {route} in time", whole_round=True) from None
        except httpx.TransportError as exc:
            raise VllmError(f"vLLM at {self.base_url} is not reachable ({type(exc).__name__}); is it running, "
                            f"and is --url right?", whole_round=True) from None
        if response.status_code == 401:
            raise VllmError(f"vLLM at {self.base_url} refused the API key (401): set WRITERSROOM_BACKEND_API_KEY "
                            f"to vLLM's --api-key", whole_round=True)
        return response


def _error_text(response: httpx.Response) -> str:
    """vLLM's error, whichever shape its version sends, as 'Type: message'."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # vLLM >= 0.10.1
            body = error
        if "message" in body:
            return f"{body.get('type') or 'error'}: {' '.join(str(body['message']).split())[:300]}"
        if isinstance(error, str):
            return error
        if "detail" in body:
            return str(body["detail"])[:300]
    return json.dumps(body)[:300]


def _is_missing_route(response: httpx.Response) -> bool:
    """FastAPI's own 404 (the route does not exist), not vLLM's NotFoundError."""
    try:
        return response.json() == {"detail": "Not Found"}
    except ValueError:
        return False


def _no_lora_routes(base_url: str) -> VllmError:
    return VllmError(f"vLLM at {base_url} has no /v1/load_lora_adapter: start it with --enable-lora and the "
                     f"environment VLLM_ALLOW_RUNTIME_LORA_UPDATING=True", whole_round=True)


def _refused(what: str, response: httpx.Response, *, whole_round: bool = False) -> VllmError:
    return VllmError(f"{what}: vLLM answered {response.status_code} ({_error_text(response)})",
                     whole_round=whole_round)


# ---- one round -------------------------------------------------------------------------------

@dataclass
class SyncReport:
    """What one round found and changed; `problems` are one line each."""

    url: str
    adapter_root: str
    base_models: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    left_alone: dict[str, str] = field(default_factory=dict)  # name -> path: not ours
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "adapter_root": self.adapter_root, "ok": self.ok, "base_models": self.base_models,
                "loaded": self.loaded, "unloaded": self.unloaded, "unchanged": self.unchanged,
                "left_alone": self.left_alone, "problems": self.problems}

    def lines(self) -> list[str]:
        """Human lines: the changes, then what was left alone; problems are separate."""
        out = [f"loaded {name} from {version_path(self.adapter_root, name)}" for name in self.loaded]
        out += [f"unloaded {name} (no longer in the registry)" for name in self.unloaded]
        out += [f"left alone {name} from {path} (not loaded from {self.adapter_root})"
                for name, path in self.left_alone.items()]
        if not self.loaded and not self.unloaded and self.ok:
            out.append(f"in sync: {len(self.unchanged)} adapter version(s) loaded in vLLM at {self.url}")
        return out


def sync_once(client: VllmClient, registry: Path, *, adapter_root: str | None = None,
              max_lora_rank: int | None = None) -> SyncReport:
    """Load the registry's complete versions vLLM lacks, unload ours that left the registry.

    `adapter_root` is the registry directory as vLLM's container sees it (default: the local
    path, for a vLLM on this host). Never raises for vLLM's errors: they are report problems.
    """
    registry = Path(registry)
    root = posixpath.normpath(adapter_root or os.path.abspath(registry))
    report = SyncReport(url=client.base_url, adapter_root=root)
    if not registry.is_dir():  # a volume that is not mounted must not read as "every version was removed"
        report.problems.append(f"the registry {registry} does not exist; nothing was changed")
        return report
    versions = {v.version: v for v in list_versions(registry)}
    try:
        cards = client.models()
        report.base_models = [str(card.get("id")) for card in cards if card.get("parent") is None]
        served = {str(card.get("id")): str(card.get("root") or "") for card in cards if card.get("parent") is not None}
        _unload_removed(client, report, served, versions)
        _load_missing(client, report, served, versions, max_lora_rank)
    except VllmError as exc:  # a whole-round error: vLLM down, wrong key, no LoRA routes
        report.problems.append(str(exc))
    return report


def _unload_removed(client: VllmClient, report: SyncReport, served: dict[str, str],
                    versions: dict[str, AdapterVersion]) -> None:
    # Unloading first frees vLLM's LoRA slots for the versions about to be loaded.
    for name, path in served.items():
        ours = posixpath.normpath(path) == version_path(report.adapter_root, name)
        if name in versions:
            if ours:
                report.unchanged.append(name)
            else:
                report.problems.append(f"{name} is loaded in vLLM from {path}, not from the registry's "
                                       f"{version_path(report.adapter_root, name)}; unload it there to let this "
                                       f"load the registry's version")
        elif not ours:
            report.left_alone[name] = path
        elif _attempt(report, lambda: client.unload(name)):  # False: someone unloaded it already
            report.unloaded.append(name)


def _load_missing(client: VllmClient, report: SyncReport, served: dict[str, str],
                  versions: dict[str, AdapterVersion], max_lora_rank: int | None) -> None:
    for name, version in versions.items():
        if name in served:
            continue
        if name in report.base_models:
            report.problems.append(f"adapter version {name} has the name of vLLM's base model; not loaded")
            continue
        too_big = rank_problem(version, max_lora_rank)
        if too_big:
            report.problems.append(too_big)
            continue
        if _attempt(report, lambda: client.load(name, version_path(report.adapter_root, name))):
            report.loaded.append(name)


def _attempt(report: SyncReport, call: Callable[[], bool]) -> bool:
    """One adapter's request: its refusal is a problem (False) and the round goes on."""
    try:
        return call()
    except VllmError as exc:
        if exc.whole_round:
            raise
        report.problems.append(str(exc))
        return False


def rank_problem(version: AdapterVersion, max_lora_rank: int | None) -> str | None:
    """Why vLLM started with --max-lora-rank `max_lora_rank` would refuse this version, or None.

    vLLM compares the largest of r and PEFT's per-module rank_pattern with its limit.
    """
    if max_lora_rank is None:
        return None
    try:
        config = json.loads((version.path / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
        rank = max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"adapter version {version.version}: cannot read its rank from {ADAPTER_FILES[0]} ({exc})"
    if rank > max_lora_rank:
        return (f"adapter version {version.version} has LoRA rank {rank} > --max-lora-rank {max_lora_rank}: vLLM "
                f"would refuse it; not loaded (start vLLM with --max-lora-rank {rank} or train with a lower lora_r)")
    return None


# ---- rounds --------------------------------------------------------------------------------------

def watch(client: VllmClient, registry: Path, *, interval_s: float, emit: Callable[[SyncReport], None],
          adapter_root: str | None = None, max_lora_rank: int | None = None,
          stop: threading.Event | None = None, rounds: int | None = None) -> None:
    """A round every `interval_s` seconds until `stop` is set (or `rounds` ran); `emit` gets
    each round whose outcome differs from the last one emitted, so that a steady state, or
    the same outage, is said once and not every round."""
    stop = stop or threading.Event()
    last: str | None = None
    done = 0
    while not stop.is_set() and (rounds is None or done < rounds):
        report = sync_once(client, registry, adapter_root=adapter_root, max_lora_rank=max_lora_rank)
        done += 1
        outcome = json.dumps([report.loaded, report.unloaded, report.problems, sorted(report.left_alone)])
        if report.loaded or report.unloaded or outcome != last:
            emit(report)
            last = outcome
        if rounds is None or done < rounds:
            stop.wait(interval_s)
