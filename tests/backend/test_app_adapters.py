"""Adapters through the HTTP API: each version under its own name, chosen per request,
hot-loaded without a restart; prefilled assistant text continued as vLLM does."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from backend.adapters import AdapterSet
from backend.app import create_app
from backend.generator import ChatGenerator
from emulators.servers import serve_asgi
from tests.backend.conftest import publish

MESSAGES = [{"role": "user", "content": "Scene: a detective corners her partner."}]


@pytest.fixture
def served(tiny_model_dir: Path, registry: Path, sources):
    publish(registry, "room-v1", sources["a"])
    generator = ChatGenerator(tiny_model_dir, name="tiny", device="cpu")
    adapters = AdapterSet(generator.model, registry=registry, base_name="tiny")
    generator.attach_adapters(adapters)
    adapters.sync()
    with serve_asgi(create_app(generator)) as url:
        yield url, adapters


def ask(url: str, model: str, **extra) -> str:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=60)
    completion = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=12, temperature=0,
                                                extra_body=extra or None)
    return completion.choices[0].message.content


def test_models_lists_base_and_each_adapter_version(served):
    url, _ = served
    cards = httpx.get(f"{url}/v1/models").json()["data"]
    assert [(card["id"], card["parent"]) for card in cards] == [("tiny", None), ("room-v1", "tiny")]


def test_the_adapter_is_chosen_per_request_by_model_name(served):
    url, _ = served
    base, adapted = ask(url, "tiny"), ask(url, "room-v1")
    assert base != adapted
    assert ask(url, "tiny") == base  # the base is untouched by having served the adapter


def test_a_new_version_is_served_without_a_restart(served, registry, sources):
    url, adapters = served
    publish(registry, "room-v2", sources["b"])
    adapters.sync()  # what the watcher does every adapter_poll_s
    assert "room-v2" in [card["id"] for card in httpx.get(f"{url}/v1/models").json()["data"]]
    assert ask(url, "room-v2") not in (ask(url, "room-v1"), ask(url, "tiny"))


def test_unknown_model_lists_every_name(served):
    url, _ = served
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": "room-v9", "messages": MESSAGES})
    assert response.status_code == 404
    assert "tiny, room-v1" in response.json()["error"]["message"]


def test_continue_final_message_leaves_the_assistant_turn_open(tiny_generator):
    prefilled = [*MESSAGES, {"role": "assistant", "content": "EXT. ALLEY - NIGHT\n\nMAYA\n"}]
    open_turn = tiny_generator.decode(tiny_generator.encode_prompt(prefilled, 8, continue_final=True))
    new_turn = tiny_generator.decode(tiny_generator.encode_prompt(MESSAGES, 8))
    assert open_turn.rstrip().endswith("MAYA")
    assert new_turn.rstrip().endswith("assistant")


def test_continue_final_message_needs_an_assistant_message_last(served):
    url, _ = served
    response = httpx.post(f"{url}/v1/chat/completions",
                          json={"model": "tiny", "messages": MESSAGES, "continue_final_message": True})
    assert response.status_code == 400 and "assistant message last" in response.json()["error"]["message"]
    ok = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
        "model": "tiny", "max_tokens": 4, "continue_final_message": True, "add_generation_prompt": False,
        "messages": [*MESSAGES, {"role": "assistant", "content": "MAYA\n"}]})
    assert ok.status_code == 200
