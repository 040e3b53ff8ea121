"""One mapping from a chat-completions request to what the engine runs: the HTTP route
(backend.app) and the in-process client the training gate uses (backend.inprocess) both
call these, so a scene sampled in process is sampled exactly as one served over HTTP.

Constraints arrive the ways vLLM and OpenAI accept them (backend.schemas) and leave as one
llguidance grammar, checked here, when the request is mapped: a grammar that does not
compile is the caller's mistake (ConstraintError, a 400 naming the field), never a failure
in the middle of a batch.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from backend.constraints import DegenerationGuard
from backend.sampling import SamplingParams
from backend.schemas import ChatCompletionRequest

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 2048
MAX_GRAMMAR_BYTES = 64 * 1024  # a scene grammar is ~2 KiB; compiling one is work done for the asker

ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


class ConstraintError(ValueError):
    """A constraint the request asks for cannot be applied; `param` names the field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class _Asked(NamedTuple):
    param: str  # the request field, for the error
    kind: str  # "grammar" (Lark), "regex", "json" (a schema) or "choice"
    value: Any


def max_tokens_of(body: ChatCompletionRequest) -> int:
    return body.max_tokens or DEFAULT_MAX_TOKENS


def continues_final(body: ChatCompletionRequest) -> bool:
    """vLLM's extension: go on from the last (assistant) message instead of opening a new turn."""
    return body.continue_final_message or not body.add_generation_prompt


def sampling_params(body: ChatCompletionRequest) -> SamplingParams:
    """Raises ConstraintError for a constraint that cannot be applied."""
    return SamplingParams(max_tokens=max_tokens_of(body), temperature=body.temperature, top_p=body.top_p,
                          repetition_penalty=body.repetition_penalty,
                          no_repeat_ngram_size=body.no_repeat_ngram_size, seed=body.seed,
                          grammar=grammar_of(body), guard=guard_of(body))


def asks_for_constraint(body: ChatCompletionRequest) -> bool:
    """Whether mapping this request compiles a grammar (work to keep off an event loop)."""
    return bool(_constraints_asked(body))


def guard_of(body: ChatCompletionRequest) -> DegenerationGuard | None:
    fields = body.degeneration_guard
    if fields is None:
        return None
    guard = DegenerationGuard(speakers=tuple(fields.speakers), max_speaker_run=fields.max_speaker_run,
                              no_repeated_lines=fields.no_repeated_lines, no_phrase_loops=fields.no_phrase_loops,
                              max_line_tokens=fields.max_line_tokens)
    if not guard.active:
        return None
    _llguidance("degeneration_guard")  # guards read tokens through llguidance's vocabulary
    return guard


def grammar_of(body: ChatCompletionRequest) -> str | None:
    """The one llguidance grammar the request asks for, compiled and checked, or None."""
    asked = _constraints_asked(body)
    if not asked:
        return None
    if len(asked) > 1:
        names = " and ".join(item.param for item in asked)
        raise ConstraintError(asked[1].param, f"One constraint per request: {names} conflict; send only one.")
    return _compile(asked[0])


def _constraints_asked(body: ChatCompletionRequest) -> list[_Asked]:
    asked: list[_Asked] = []
    if body.structured_outputs is not None:
        outputs = body.structured_outputs
        for field, kind, value in (("grammar", "grammar", outputs.grammar), ("regex", "regex", outputs.regex),
                                   ("json", "json", outputs.json_schema), ("choice", "choice", outputs.choice),
                                   ("json_object", "json", ANY_JSON_OBJECT if outputs.json_object else None)):
            if value is not None:
                asked.append(_Asked(f"structured_outputs.{field}", kind, value))
    for field, kind in (("guided_grammar", "grammar"), ("guided_regex", "regex"), ("guided_json", "json"),
                        ("guided_choice", "choice")):
        value = getattr(body, field)
        if value is not None:
            asked.append(_Asked(field, kind, value))
    response_format = body.response_format
    if response_format is not None and response_format.type == "json_object":
        asked.append(_Asked("response_format", "json", ANY_JSON_OBJECT))
    elif response_format is not None and response_format.type == "json_schema":
        if response_format.json_schema is None:
            raise ConstraintError("response_format.json_schema", "response_format of type json_schema needs "
                                                                 "a json_schema with a schema.")
        asked.append(_Asked("response_format.json_schema", "json", response_format.json_schema.schema_))
    return asked


def _compile(asked: _Asked) -> str:
    source = asked.value if isinstance(asked.value, str) else json.dumps(asked.value)
    if len(source.encode()) > MAX_GRAMMAR_BYTES:
        raise ConstraintError(asked.param, f"{asked.param}: at most {MAX_GRAMMAR_BYTES // 1024} KiB.")
    matcher = _llguidance(asked.param).LLMatcher
    if asked.kind == "grammar":
        grammar = matcher.grammar_from_lark(asked.value)
    elif asked.kind == "regex":
        grammar = matcher.grammar_from_regex(asked.value)
    elif asked.kind == "choice":
        grammar = matcher.grammar_from_lark(_choice_lark(asked.param, asked.value))
    else:
        grammar = matcher.grammar_from_json_schema(_json_schema(asked))
    failed, messages = matcher.validate_grammar_with_warnings(grammar)
    if failed:
        raise ConstraintError(asked.param, f"{asked.param}: {messages[0].strip()}")
    return grammar


def _json_schema(asked: _Asked) -> dict[str, Any]:
    """The schema as a JSON object; a string is parsed here, where the error can say what is wrong."""
    schema = asked.value
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise ConstraintError(asked.param, f"{asked.param}: not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ConstraintError(asked.param, f"{asked.param}: a JSON schema is a JSON object.")
    return schema


def _choice_lark(param: str, choices: list[str]) -> str:
    """One alternative per choice; JSON's string escapes are Lark's."""
    if any(not choice for choice in choices):
        raise ConstraintError(param, f"{param}: choices must not be empty strings.")
    return "start: " + " | ".join(json.dumps(choice) for choice in choices)


def _llguidance(param: str) -> Any:
    try:
        import llguidance
    except ImportError:
        raise ConstraintError(param, f"{param}: this backend was installed without llguidance, so it cannot "
                                     "constrain decoding.") from None
    return llguidance
