"""The LoRA trainer on a tiny Llama built from a config: loss on the scene only, the adapter
PEFT and vLLM read, the loss curve, and a resume from the last complete checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.settings import TrainingSettings

SCENE = "INT. KITCHEN - NIGHT\n\nMAYA\nYou sold us out.\n\nCOLE\nI kept you alive."


def chat(situation: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write scenes."}, {"role": "user", "content": situation},
            {"role": "assistant", "content": SCENE}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.support.tiny_lm import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny"))


def settings(**overrides) -> TrainingSettings:
    values = dict(lora_r=4, lora_alpha=8, top_layers=1, target_modules=["q_proj", "v_proj"], learning_rate=5e-3,
                  max_steps=6, batch_size=2, grad_accum=1, checkpoint_steps=3, max_seq_len=128, seed=0)
    return TrainingSettings(**{**values, **overrides})


def test_only_the_scene_is_scored(tiny_model):
    from transformers import AutoTokenizer

    from training.sft_tokens import IGNORE, tokenize_chat

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    example = tokenize_chat(tokenizer, chat("Scene: a detective corners her partner."), max_len=256)
    scored = tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE])
    assert scored.startswith("INT. KITCHEN - NIGHT") and "detective" not in scored
    # a prompt that fills the whole window leaves nothing to learn: the example is dropped
    assert tokenize_chat(tokenizer, chat("Scene: a detective corners her partner. " * 40), max_len=32) is None


def test_training_writes_a_lora_adapter_and_the_loss_falls(tiny_model, tmp_path):
    from training.trainer import train_adapter

    train = [chat(f"Scene: a detective corners her partner, take {n}.") for n in range(8)]
    steps = []
    outcome = train_adapter(train, train[:2], base_model_dir=tiny_model, work_dir=tmp_path / "run",
                            settings=settings(), progress=False, on_step=lambda step, total: steps.append((step, total)))
    config = json.loads((outcome.adapter_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4 and config["layers_to_transform"] == [1]
    assert (outcome.adapter_dir / "adapter_model.safetensors").is_file()
    assert steps[-1] == (6, 6) and [step for step, _ in outcome.losses] == list(range(1, 7))
    assert outcome.losses[-1][1] < outcome.losses[0][1]  # one repeated scene: the loss must come down
    assert outcome.eval_losses and outcome.eval_losses[-1][0] == 6


def test_a_run_resumes_from_its_last_complete_checkpoint(tiny_model, tmp_path):
    from training.trainer import CHECKPOINTS_SUBDIR, train_adapter

    train = [chat(f"Scene: take {n}.") for n in range(8)]
    work = tmp_path / "run"
    train_adapter(train, [], base_model_dir=tiny_model, work_dir=work, settings=settings(max_steps=3),
                  progress=False)
    (work / CHECKPOINTS_SUBDIR / "checkpoint-99").mkdir()  # a checkpoint killed half way
    outcome = train_adapter(train, [], base_model_dir=tiny_model, work_dir=work, settings=settings(max_steps=6),
                            progress=False)
    assert outcome.resumed_from and outcome.resumed_from.endswith("checkpoint-3")
    assert not (work / CHECKPOINTS_SUBDIR / "checkpoint-99").exists()
    assert [step for step, _ in outcome.losses] == list(range(1, 7))  # the curve spans both runs


def test_training_can_start_from_another_adapter(tiny_model, tmp_path):
    # The house adapter as a room's starting point: its weights and LoRA shape, not a fresh LoRA.
    from safetensors.torch import load_file

    from training.trainer import train_adapter

    train = [chat(f"Scene: a detective corners her partner, take {n}.") for n in range(4)]
    house = train_adapter(train, [], base_model_dir=tiny_model, work_dir=tmp_path / "house",
                          settings=settings(max_steps=3), progress=False).adapter_dir
    room = train_adapter(train, [], base_model_dir=tiny_model, work_dir=tmp_path / "room",
                         settings=settings(max_steps=1, learning_rate=1e-9, lora_r=8, target_modules=["o_proj"]),
                         progress=False, start_from=house).adapter_dir
    started, finished = load_file(house / "adapter_model.safetensors"), load_file(room / "adapter_model.safetensors")
    assert json.loads((room / "adapter_config.json").read_text())["r"] == 4  # the house adapter's shape
    assert started.keys() == finished.keys()
    for name, tensor in started.items():  # a step at lr 1e-9 leaves the house weights where they were
        assert (finished[name] - tensor).abs().max() < 1e-6, name
    assert any(tensor.abs().max() > 0 for name, tensor in started.items() if "lora_B" in name)  # and they are trained
