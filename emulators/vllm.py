"""A fake vLLM OpenAI server on loopback, for what writersroom uses of it.

Shapes and status codes follow vLLM's own sources (vllm-project/vllm:
`entrypoints/openai/models/serving.py` OpenAIServingModels, `entrypoints/serve/lora/api_router.py`,
`entrypoints/openai/engine/protocol.py` ModelCard/ErrorResponse), as of the v0.10.1+ error shape:

- GET /v1/models: the base model (id = served name, root = model path, parent = null,
  max_model_len) and then each LoRA (id = lora_name, root = lora_path, parent = base name);
- POST /v1/load_lora_adapter {"lora_name", "lora_path"}: 200 with a plain-text "Success: ..."
  body; 400 InvalidUserInput when the name is already loaded or a field is missing; 404
  NotFoundError "Loading lora X failed: No adapter found for P" when the directory has no
  adapter_config.json; 400 BadRequestError with the loader's message when vLLM's loader refuses
  it (tests/support/vllm_lora_format.py: rank above --max-lora-rank, DoRA, modules_to_save, ...).
  Those two routes exist only with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (else FastAPI's 404);
- POST /v1/unload_lora_adapter {"lora_name"}: 200 text, or 404 NotFoundError "cannot be found";
- POST /v1/chat/completions: answers for the base name or a loaded LoRA name only, else 404
  NotFoundError "The model `X` does not exist."; continue_final_message continues the last
  assistant message. The text is a small valid Fountain scene naming the model that wrote it;
  with "stream": true it comes as vLLM streams it: a first chunk with the role, the text in
  pieces, a chunk with the finish reason, a usage chunk with no choices when
  stream_options.include_usage, then `data: [DONE]` (and no comments: vLLM sends none);
- errors are {"error": {"message", "type", "param", "code"}} (vLLM >= 0.10.1; older releases
  sent the same fields flat with "object": "error"); with an api key, /v1/* without the right
  Bearer is 401 {"error": "Unauthorized"}.

`mounts` maps a path prefix as vLLM sees it to a local directory, like a container volume:
FakeVllm(mounts={"/adapters": registry}) reads /adapters/v1 from registry/v1.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from emulators.servers import serve_asgi
from emulators.vllm_lora_format import adapter_problems

SCENE_HEADING = "INT. WRITERS' ROOM - NIGHT"


def scene_body(model: str) -> str:
    """Everything after a heading; the action line says which model wrote it."""
    return (f"A monitor glows in the dark. Its status line reads: written by {model}.\n\n"
            "COLE\n(backing away)\nI kept you alive.\n\n"
            "MAYA\nThen stay and prove it.\n\n"
            "COLE\nI stayed for ten years.\n\n"
            "MAYA\nAnd you counted every one of them.")


def continuation(prefix: str, model: str) -> str:
    """What a model continuing the assistant text `prefix` writes: the rest of one scene."""
    stripped = prefix.rstrip()
    if not stripped:
        return f"{SCENE_HEADING}\n\n{scene_body(model)}"
    last = stripped.rsplit("\n", 1)[-1].strip()
    if last.upper() in ("INT.", "EXT."):  # an unfinished heading: the model names the place
        return f" WRITERS' ROOM - NIGHT\n\n{scene_body(model)}"
    if last.isupper() and not last.startswith(("INT", "EXT", "I/E", "EST")):  # a cue: its line comes first
        return ("" if prefix.endswith("\n") else "\n") + f"Say that again, slowly.\n\n{scene_body(model)}"
    ending = len(prefix) - len(prefix.rstrip("\n"))
    return "\n" * max(0, 2 - ending) + scene_body(model)  # a blank line before the next paragraph


def _chunks(model: str, text: str, usage: dict | None):
    """vLLM's chunk stream for ``text``: role, pieces of up to 40 characters, finish, usage, [DONE]."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}

    def event(choices: list, **extra) -> str:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n"

    def choice(delta: dict, finish_reason: str | None = None) -> dict:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    yield event([choice({"role": "assistant", "content": ""})])
    for start in range(0, len(text), 40):
        yield event([choice({"content": text[start:start + 40]})])
    yield event([choice({"content": ""}, "stop")])
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


def _error(message: str, err_type: str, code: int, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": err_type, "param": param, "code": code}},
                        status_code=code)


@dataclass
class FakeVllm:
    base_name: str = "smollm2"  # --served-model-name
    base_path: str = "/models/smollm2"  # the model path it was started with
    max_lora_rank: int = 16
    max_model_len: int = 8192
    api_key: str | None = None  # --api-key
    runtime_lora_updating: bool = True  # VLLM_ALLOW_RUNTIME_LORA_UPDATING
    mounts: dict[str, Path] = field(default_factory=dict)
    loras: dict[str, str] = field(default_factory=dict)  # lora_name -> lora_path, in load order
    requests: list[dict[str, Any]] = field(default_factory=list)  # chat completion bodies
    lora_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # ("load"|"unload", body)
    url: str = field(default="", init=False)  # http://127.0.0.1:PORT/v1 once started

    def local(self, path: str) -> Path:
        """Where a path as vLLM sees it lies on this machine (through `mounts`)."""
        pure = PurePosixPath(path)
        for prefix, directory in self.mounts.items():
            if pure == PurePosixPath(prefix) or PurePosixPath(prefix) in pure.parents:
                return Path(directory) / pure.relative_to(prefix)
        return Path(path)

    # ---- the routes' logic ---------------------------------------------------------------

    def _cards(self) -> list[dict[str, Any]]:
        def card(model_id: str, root: str, parent: str | None, max_len: int | None) -> dict[str, Any]:
            created = int(time.time())
            permission = {"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission", "created": created,
                          "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                          "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                          "organization": "*", "group": None, "is_blocking": False}
            return {"id": model_id, "object": "model", "created": created, "owned_by": "vllm", "root": root,
                    "parent": parent, "max_model_len": max_len, "permission": [permission]}

        return [card(self.base_name, self.base_path, None, self.max_model_len),
                *(card(name, path, self.base_name, None) for name, path in self.loras.items())]

    def _load(self, body: dict[str, Any]):
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error("Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400)
        if name in self.loras and not body.get("load_inplace"):
            return _error(f"The lora adapter '{name}' has already been loaded. If you want to load the adapter "
                          "in place, set 'load_inplace' to True.", "InvalidUserInput", 400)
        try:
            problems = adapter_problems(self.local(path), max_lora_rank=self.max_lora_rank)
        except (FileNotFoundError, NotADirectoryError):
            return _error(f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError", 404)
        except (OSError, ValueError) as exc:
            return _error(str(exc), "BadRequestError", 400)
        if problems:
            return _error(" ".join(problems), "BadRequestError", 400)
        self.loras[name] = path
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    def _unload(self, body: dict[str, Any]):
        name = body.get("lora_name")
        if not name:
            return _error("'lora_name' needs to be provided to unload a LoRA adapter.", "InvalidUserInput", 400)
        if name not in self.loras:
            return _error(f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404)
        del self.loras[name]
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    def _chat(self, body: dict[str, Any]):
        self.requests.append(body)
        structured = body.get("structured_outputs")
        if structured is not None:  # vLLM's check: a dict naming exactly one kind of constraint
            kinds = [key for key in ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
                     if isinstance(structured, dict) and structured.get(key) is not None]
            if len(kinds) != 1:
                return _error("You can only use one kind of constraints for structured outputs ('json', 'regex' "
                              "or 'choice' or 'grammar' or 'json_object' or 'structural_tag').",
                              "BadRequestError", 400)
        model = body.get("model") or self.base_name
        if model != self.base_name and model not in self.loras:
            return _error(f"The model `{model}` does not exist.", "NotFoundError", 404, param="model")
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        if body.get("continue_final_message") and last.get("role") == "assistant":
            text = continuation(last.get("content") or "", model)
        else:
            text = f"{SCENE_HEADING}\n\n{scene_body(model)}"
        words = len(text.split())
        usage = {"prompt_tokens": 50, "total_tokens": 50 + words, "completion_tokens": words}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_chunks(model, text, usage if include_usage else None),
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "reasoning_content": None,
                                                 "tool_calls": []},
                         "logprobs": None, "finish_reason": "stop", "stop_reason": None}],
            "usage": {"prompt_tokens": 50, "total_tokens": 50 + words, "completion_tokens": words,
                      "prompt_tokens_details": None},
            "prompt_logprobs": None, "kv_transfer_params": None,
        })

    # ---- the app ---------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()
        fake = self

        @app.middleware("http")
        async def authenticate(request: Request, call_next):
            # vLLM checks only /v1 routes (its /health stays open to probes)
            if fake.api_key and request.url.path.startswith("/v1") and \
                    request.headers.get("authorization") != f"Bearer {fake.api_key}":
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            return await call_next(request)

        @app.get("/health")
        async def health():
            return PlainTextResponse("")

        @app.get("/v1/models")
        async def models():
            return {"object": "list", "data": fake._cards()}

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            return fake._chat(await request.json())

        if self.runtime_lora_updating:
            @app.post("/v1/load_lora_adapter")
            async def load(request: Request):
                body = await request.json()
                fake.lora_calls.append(("load", body))
                return fake._load(body)

            @app.post("/v1/unload_lora_adapter")
            async def unload(request: Request):
                body = await request.json()
                fake.lora_calls.append(("unload", body))
                return fake._unload(body)

        return app

    def __enter__(self) -> "FakeVllm":
        self._stack = ExitStack()
        self.url = self._stack.enter_context(serve_asgi(self.app())) + "/v1"
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
