"""The real SmolLM2 behind the real backend, asked through the core's own client."""

from __future__ import annotations

import asyncio

import pytest

from backend.app import create_app
from backend.generator import ChatGenerator
from emulators.servers import serve_asgi
from llm.client import ChatClient
from screenplay.prompting import build_messages, parse_dialogue_request

pytestmark = pytest.mark.integration


def test_smollm2_writes_a_scene_through_the_openai_api(generator_dir):
    generator = ChatGenerator(generator_dir, name="smollm2-135m-instruct", device="cpu")
    assert generator.context_window >= 2048
    messages = build_messages(parse_dialogue_request("two sisters argue about a letter characters: June, Rose"),
                              [], exemplar_chars=600)
    with serve_asgi(create_app(generator)) as url:
        client = ChatClient(f"{url}/v1", silence_timeout_s=120)
        assert asyncio.run(client.models()) == ["smollm2-135m-instruct"]
        completion = asyncio.run(client.complete(
            model="smollm2-135m-instruct", messages=messages, max_tokens=96, temperature=0.7, top_p=0.9,
            repetition_penalty=1.15, no_repeat_ngram_size=4, seed=11))
    assert completion.completion_tokens > 10
    words = completion.text.split()
    assert len(words) > 8
    # Sampling settings keep the small model out of loops: no word run repeats back to back.
    assert not any(words[i:i + 4] == words[i + 4:i + 8] for i in range(len(words) - 8))
