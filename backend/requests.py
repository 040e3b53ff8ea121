"""One mapping from a chat-completions request to what the engine runs: the HTTP route
(backend.app) and the in-process client the training gate uses (backend.inprocess) both
call these, so a scene sampled in process is sampled exactly as one served over HTTP."""

from __future__ import annotations

from backend.sampling import SamplingParams
from backend.schemas import ChatCompletionRequest

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 2048


def max_tokens_of(body: ChatCompletionRequest) -> int:
    return body.max_tokens or DEFAULT_MAX_TOKENS


def continues_final(body: ChatCompletionRequest) -> bool:
    """vLLM's extension: go on from the last (assistant) message instead of opening a new turn."""
    return body.continue_final_message or not body.add_generation_prompt


def sampling_params(body: ChatCompletionRequest) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens_of(body), temperature=body.temperature, top_p=body.top_p,
                          repetition_penalty=body.repetition_penalty,
                          no_repeat_ngram_size=body.no_repeat_ngram_size, seed=body.seed)
