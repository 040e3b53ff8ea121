"""The backend's generation path without HTTP: the ChatClient's `complete` over a Scheduler.

    generator = ChatGenerator(path, name="smollm2-135m-instruct")
    chat = InProcessChat(generator, max_batch=32)
    scene = await generate_scene(chat, model="smollm2-135m-instruct", ...)
    chat.close()

The training evaluation gate samples scenes from a candidate adapter and from what
serves through this, so it measures exactly the code writers are served by (the same
prompt encoding, continuous batching, sampling and mixed-adapter forward passes), in
the training process, with no port to open. It mirrors the HTTP endpoint's handling
of one request (backend.app.chat_completions) minus the wire format.
"""

from __future__ import annotations

from backend.batching import Scheduler
from backend.sampling import SamplingParams
from llm.client import Completion

DEFAULT_MAX_TOKENS = 256


class InProcessChat:
    """Anything with ChatGenerator's interface (adapters attached or not), batched by a Scheduler."""

    def __init__(self, generator, *, max_batch: int = 16, max_queue: int = 1024,
                 request_timeout_s: float = 3600.0) -> None:
        self.generator = generator
        self.scheduler = Scheduler(generator, max_queue=max_queue, max_batch=max_batch, batch_wait_ms=50,
                                   request_timeout_s=request_timeout_s)

    def _version(self, model: str) -> str | None:
        """None for the base model, else the adapter version serving `model` (KeyError if unknown)."""
        adapters = getattr(self.generator, "adapters", None)
        if adapters is None:
            if model != self.generator.name:
                raise KeyError(model)
            return None
        return adapters.resolve(model)

    async def complete(self, *, model: str, messages: list[dict[str, str]], **sampling: object) -> Completion:
        continue_final = bool(sampling.get("continue_final_message")) or sampling.get("add_generation_prompt") is False
        max_tokens = int(sampling.get("max_tokens") or DEFAULT_MAX_TOKENS)
        params = SamplingParams(
            max_tokens=max_tokens, temperature=float(sampling.get("temperature", 0.7)),
            top_p=float(sampling.get("top_p", 0.9)), repetition_penalty=float(sampling.get("repetition_penalty", 1.0)),
            no_repeat_ngram_size=int(sampling.get("no_repeat_ngram_size", 0)),
            seed=None if sampling.get("seed") is None else int(sampling["seed"]),
        )
        prompt_ids = self.generator.encode_prompt(messages, max_tokens, continue_final=continue_final)
        ticket = self.scheduler.submit(prompt_ids, params, adapter=self._version(model))
        result = await ticket.wait()
        return Completion(text=result.text, model=model, finish_reason=result.finish_reason,
                          prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)

    def close(self) -> None:
        self.scheduler.close()
