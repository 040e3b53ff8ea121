from __future__ import annotations

from pathlib import Path

import pytest

from registry import versions as reg
from tests.support.tiny_lm import build_tiny_chat_model

BASE = "tiny"  # the tiny model's served name


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_generator(tiny_model_dir: Path):
    from backend.generator import ChatGenerator

    return ChatGenerator(tiny_model_dir, name="tiny", device="cpu")


def make_adapter(model_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            # Both halves from the seeded generator: lora_A's own init draws from torch's global
            # RNG, which would make an adapter depend on the tests that ran before it.
            if "lora_A" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
            elif "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sources(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lora-sources")
    return {name: make_adapter(tiny_model_dir, root / name, seed) for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "adapters"


def publish(registry: Path, version: str, source, *, base_model: str = BASE, **fields) -> reg.AdapterVersion:
    defaults = dict(training={"r": 4, "lr": 2e-4}, data_hash="sha256:abc", example_count=12, metrics={"loss": 1.5})
    return reg.write_adapter_version(registry, version, source=source, base_model=base_model, **{**defaults, **fields})


