"""The training gate counts valid scenes with the strict judge, decoding as writers are served."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llm.client import Completion
from training.gate import EvalSetup, _sample

FIXTURES = Path(__file__).resolve().parents[1] / "screenplay" / "fixtures" / "bad_scenes"
LIGHTHOUSE = ("a lighthouse keeper refuses to leave as the storm surge rises characters: Agnes, Deputy Marsh "
              "tone: stubborn")


class OneAnswer:
    """A chat that answers every request with one text, and keeps what it was asked."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[dict] = []

    async def complete(self, **request) -> Completion:
        self.requests.append(request)
        return Completion(text=self.text, model=request["model"], finish_reason="stop", prompt_tokens=1,
                          completion_tokens=1)


def setup(tmp_path: Path, **decoding) -> EvalSetup:
    return EvalSetup(base_model_dir=tmp_path, base_name="base", candidate_dir=tmp_path, serving_dir=None,
                     serving_label="base model", validation_chats=[], screenplay_chats=[], prompts=[LIGHTHOUSE],
                     sampling={"temperature": 0.7, "max_tokens": 320}, work_dir=tmp_path, decoding=decoding)


def test_the_first_waves_lighthouse_scene_counts_as_invalid_and_looping(tmp_path):
    bad = (FIXTURES / "lighthouse_the_fire.fountain").read_text()
    chat = OneAnswer(bad)
    row = asyncio.run(_sample(chat, "candidate", 0, LIGHTHOUSE, setup(tmp_path, constrained=False)))
    assert row["valid"] is False and row["looping"] is True
    assert any("The fire" in problem for problem in row["problems"])


def test_the_gate_asks_for_the_scene_grammar_as_the_bot_does(tmp_path):
    good = ("INT. LIGHTHOUSE - NIGHT\n\nAGNES\nI won't leave.\n\nDEPUTY MARSH\nThe water is rising.\n\n"
            "AGNES\nThis light has kept ships safe for forty years.\n\nDEPUTY MARSH\nThen I'll stay too.")
    chat = OneAnswer(good)
    row = asyncio.run(_sample(chat, "candidate", 0, LIGHTHOUSE, setup(tmp_path, constrained=True)))
    assert row["valid"] is True and row["looping"] is False
    assert chat.requests[-1]["structured_outputs"]["grammar"].startswith("start:")
    assert chat.requests[-1]["degeneration_guard"]["speakers"] == ["AGNES", "DEPUTY MARSH"]
