"""The slice of the OpenAI chat-completions API the backend serves.

Extra sampling fields (repetition_penalty, no_repeat_ngram_size, seed) ride along the
way vLLM accepts them, so one client works against both servers; so do constraints:
vLLM's `structured_outputs` (>= 0.10.2) and older `guided_*` fields, and OpenAI's
`response_format`. backend.requests turns them into one llguidance grammar.
`degeneration_guard` is our own extension (vLLM ignores fields it does not know).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class StructuredOutputs(BaseModel):
    """vLLM's `structured_outputs`: one of json, regex, choice, grammar (Lark) or json_object.

    Unknown keys are refused (a constraint kind we cannot apply must not pass silently);
    vLLM's tuning knobs for its own backends are accepted and ignored: llguidance needs none."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    json_schema: dict[str, Any] | str | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    grammar: str | None = None
    json_object: bool | None = None
    disable_fallback: bool | None = None
    disable_any_whitespace: bool | None = None
    disable_additional_properties: bool | None = None
    whitespace_pattern: str | None = None


class JsonSchemaFormat(BaseModel):
    """OpenAI's response_format.json_schema."""

    model_config = ConfigDict(populate_by_name=True)

    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """OpenAI's response_format: "text" (no constraint), "json_object" (any JSON object) or "json_schema"."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


SpeakerName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]


class DegenerationGuardFields(BaseModel):
    """Our extension: what a grammar cannot say (backend.constraints.DegenerationGuard)."""

    model_config = ConfigDict(extra="forbid")

    speakers: list[SpeakerName] = Field(default_factory=list, max_length=64)
    max_speaker_run: int | None = Field(default=None, ge=1, le=100)
    no_repeated_lines: bool = False
    no_phrase_loops: bool = False
    max_line_tokens: int | None = Field(default=None, ge=1, le=4096)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False  # a last chunk with no choices carries the usage (as OpenAI and vLLM do)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=2.0)
    no_repeat_ngram_size: int = Field(default=0, ge=0, le=20)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    # vLLM's fields for continuing a final assistant message (prefilled text) instead of
    # opening a new assistant turn.
    continue_final_message: bool = False
    add_generation_prompt: bool = True
    # Constraints, at most one per request (backend.requests says which fields conflict).
    structured_outputs: StructuredOutputs | None = None
    guided_grammar: str | None = None
    guided_regex: str | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_choice: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    response_format: ResponseFormat | None = None
    degeneration_guard: DegenerationGuardFields | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Choice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "writersroom"
    parent: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def error_body(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
