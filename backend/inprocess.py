"""The backend's generation path without HTTP: the ChatClient's `complete` over a Scheduler.

    generator = ChatGenerator(path, name="smollm2-135m-instruct")
    chat = InProcessChat(generator, max_batch=32)
    scene = await generate_scene(chat, model="smollm2-135m-instruct", ...)
    chat.close()

The training evaluation gate samples scenes from a candidate adapter and from what
serves through this, so it measures exactly the code writers are served by (the same
prompt encoding, continuous batching, sampling and mixed-adapter forward passes), in
the training process, with no port to open. It maps a request to the engine with the
HTTP route's own request model and mapping (backend.requests), minus the wire format.
"""

from __future__ import annotations

import asyncio

from backend.batching import Scheduler
from backend.requests import (
    asks_for_constraint,
    continues_final,
    max_tokens_of,
    sampling_params,
)
from backend.schemas import ChatCompletionRequest
from llm.client import Completion


class InProcessChat:
    """Anything with ChatGenerator's interface (adapters attached or not), batched by a Scheduler."""

    def __init__(self, generator, *, max_batch: int = 16, max_queue: int = 1024,
                 queue_timeout_s: float = 3600.0, jump_forward: bool = True) -> None:
        self.generator = generator
        self.scheduler = Scheduler(generator, max_queue=max_queue, max_batch=max_batch, batch_wait_ms=50,
                                   jump_forward=jump_forward,
                                   queue_timeout_s=queue_timeout_s)

    def _version(self, model: str) -> str | None:
        """None for the base model, else the adapter version serving `model` (KeyError if unknown)."""
        adapters = getattr(self.generator, "adapters", None)
        if adapters is None:
            if model != self.generator.name:
                raise KeyError(model)
            return None
        return adapters.resolve(model)

    async def complete(self, *, model: str, messages: list[dict[str, str]], on_queue=None,
                       **sampling: object) -> Completion:
        """As ChatClient.complete; ``on_queue`` is accepted and never called (the training gate and the
        benchmarks that run in-process have nobody to tell where a request stands)."""
        # The same request model and mapping as the HTTP route: same defaults, same validation.
        body = ChatCompletionRequest(model=model, messages=messages, **sampling)
        prompt_ids = self.generator.encode_prompt(messages, max_tokens_of(body), continue_final=continues_final(body))
        # A grammar is compiled and checked off the loop, as the HTTP route does; a ConstraintError propagates.
        params = await asyncio.to_thread(sampling_params, body) if asks_for_constraint(body) else sampling_params(body)
        ticket = self.scheduler.submit(prompt_ids, params, adapter=self._version(model))
        result = await ticket.wait()
        return Completion(text=result.text, model=model, finish_reason=result.finish_reason,
                          prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)

    def close(self) -> None:
        self.scheduler.close()
