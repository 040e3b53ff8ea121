"""The adapter directory training publishes is what vLLM's LoRA loader reads.

A real training run on the tiny Llama built from a config (tests/training's fixtures), with
the production LoRA settings (rank 16, every projection, every layer), then the checker of
tests/support/vllm_lora_format.py, which mirrors vLLM's loader. The checker itself is
proven to catch each way an adapter would be refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.vllm_sync import VllmClient
from config.settings import load_settings
from emulators.vllm import FakeVllm
from emulators.vllm_lora_format import (
    LLAMA_LORA_MODULES,
    PREFIX,
    TINY_LLAMA,
    adapter_problems,
    llama_module_shapes,
    parse_lora_name,
    read_safetensors_header,
    write_lora_adapter,
    write_zero_safetensors,
)
from registry import versions as registry
from tests.training.conftest import tiny_base_model, tiny_training_env  # noqa: F401  (fixtures)
from tests.training.run_support import import_scenes

COMPOSE_MAX_LORA_RANK = 16  # the --max-lora-rank of the vLLM service in the compose file


@pytest.fixture
def trained_adapter(tiny_training_env, monkeypatch) -> Path:  # noqa: F811
    """A version published by a real training run, with the default LoRA settings."""
    from training.run import run_training

    for name in ("LORA_R", "LORA_ALPHA", "TARGET_MODULES", "TOP_LAYERS"):  # back to the shipped defaults
        monkeypatch.delenv(f"WRITERSROOM_TRAINING_{name}")
    import_scenes(12)
    settings = load_settings()
    result = run_training(settings, trigger="test", progress=False)
    assert result.version, result.summary()
    return registry.get_version(settings.adapter_dir, result.version).path


def test_a_trained_adapter_has_the_files_and_fields_vllm_reads(trained_adapter: Path, tiny_base_model) -> None:  # noqa: F811
    config = json.loads((trained_adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert isinstance(config["r"], int) and 1 <= config["r"] <= COMPOSE_MAX_LORA_RANK
    assert isinstance(config["lora_alpha"], int)
    modules = config["target_modules"]
    assert set([modules] if isinstance(modules, str) else modules) == LLAMA_LORA_MODULES
    assert config["bias"] == "none" and not config.get("use_dora") and not config.get("modules_to_save")
    # vLLM scales by alpha/r, or alpha/sqrt(r) under rsLoRA: the flag must say what training did.
    assert config.get("use_rslora", False) is False
    assert not config.get("rank_pattern") and not config.get("alpha_pattern")
    assert config["base_model_name_or_path"]

    model_config = json.loads((tiny_base_model / "config.json").read_text())
    shapes = llama_module_shapes(model_config)
    header = read_safetensors_header(trained_adapter / "adapter_model.safetensors")
    seen = set()
    for name, info in header.items():
        assert name.startswith(PREFIX), name
        module, kind = parse_lora_name(name)
        leaf = module.rsplit(".", 1)[-1]
        assert leaf in LLAMA_LORA_MODULES, name  # no embed_tokens, no lm_head
        fan_in, fan_out = shapes[leaf]
        assert info["shape"] == ([config["r"], fan_in] if kind == "lora_A" else [fan_out, config["r"]]), name
        seen.add((module, kind))
    layers = model_config["num_hidden_layers"]
    assert len(seen) == layers * len(LLAMA_LORA_MODULES) * 2  # both halves of every projection, every layer
    assert adapter_problems(trained_adapter, max_lora_rank=COMPOSE_MAX_LORA_RANK, model_config=model_config) == []

    # and the fake vLLM, whose load endpoint runs the same checks, serves it from the mounted registry
    version = trained_adapter.name
    with FakeVllm(max_lora_rank=COMPOSE_MAX_LORA_RANK, mounts={"/adapters": trained_adapter.parent}) as vllm:
        client = VllmClient(vllm.url)
        assert client.load(version, f"/adapters/{version}")
        assert {card["id"]: card["root"] for card in client.models()}[version] == f"/adapters/{version}"
        client.close()


# ---- the checker catches what vLLM refuses ------------------------------------------------------

@pytest.mark.parametrize("fields, expected", [
    ({"r": 32}, "LoRA rank 32 is greater than max_lora_rank 16."),
    ({"rank_pattern": {"q_proj": 64}}, "LoRA rank 64 is greater than max_lora_rank 16."),
    ({"modules_to_save": ["lm_head"]}, "vLLM only supports modules_to_save being None."),
    ({"use_dora": True}, "vLLM does not yet support DoRA."),
    ({"bias": "lora_only"}, "Adapter bias is not supported."),
    ({"peft_type": "IA3"}, "peft_type is 'IA3', not 'LORA'"),
    ({"base_model_name_or_path": None}, "base_model_name_or_path is missing"),
    ({"use_rslora": "yes"}, "use_rslora must be true or false"),
])
def test_config_problems_are_named(tmp_path: Path, fields: dict, expected: str) -> None:
    adapter = write_lora_adapter(tmp_path / "a", **fields)
    assert any(expected in problem for problem in adapter_problems(adapter, max_lora_rank=16))


def test_a_well_formed_synthetic_adapter_passes(tmp_path: Path) -> None:
    adapter = write_lora_adapter(tmp_path / "a", r=8, modules=sorted(LLAMA_LORA_MODULES))
    assert adapter_problems(adapter, max_lora_rank=16, model_config=TINY_LLAMA) == []


def _with_tensors(tmp_path: Path, shapes: dict[str, list[int]]) -> Path:
    adapter = write_lora_adapter(tmp_path / "a", r=4)
    write_zero_safetensors(adapter / "adapter_model.safetensors", shapes)
    return adapter


@pytest.mark.parametrize("shapes, expected", [
    ({f"{PREFIX}lm_head.lora_A.weight": [4, 32], f"{PREFIX}lm_head.lora_B.weight": [400, 4]},
     "embedding and lm_head LoRA are not served"),
    ({f"{PREFIX}model.embed_tokens.lora_embedding_A": [4, 400]}, "embedding and lm_head LoRA are not served"),
    ({f"{PREFIX}model.layers.0.self_attn.q_proj.weight": [32, 32]}, "is unsupported LoRA weight"),
    ({f"{PREFIX}model.layers.0.self_attn.rotary.lora_A.weight": [4, 32],
      f"{PREFIX}model.layers.0.self_attn.rotary.lora_B.weight": [32, 4]}, "expected target modules in"),
    ({"model.layers.0.self_attn.q_proj.lora_A.weight": [4, 32],
      "model.layers.0.self_attn.q_proj.lora_B.weight": [32, 4]}, "does not start with 'base_model.model.'"),
    ({f"{PREFIX}model.layers.0.self_attn.q_proj.lora_A.weight": [4, 32]}, "a LoRA layer needs lora_A and lora_B"),
    ({f"{PREFIX}model.layers.0.self_attn.q_proj.lora_A.weight": [32, 4],
      f"{PREFIX}model.layers.0.self_attn.q_proj.lora_B.weight": [4, 32]}, "are not (r, in) / (out, r) with r=4"),
    ({f"{PREFIX}model.layers.0.mlp.up_proj.lora_A.weight": [4, 32],
      f"{PREFIX}model.layers.0.mlp.up_proj.lora_B.weight": [32, 4]}, "the base model's layer is (32, 64)"),
])
def test_tensor_problems_are_named(tmp_path: Path, shapes: dict, expected: str) -> None:
    problems = adapter_problems(_with_tensors(tmp_path, shapes), max_lora_rank=16, model_config=TINY_LLAMA)
    assert any(expected in problem for problem in problems), problems


def test_no_config_is_vllms_not_found_and_no_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        adapter_problems(tmp_path / "nowhere")
    adapter = write_lora_adapter(tmp_path / "a")
    (adapter / "adapter_model.safetensors").unlink()
    assert adapter_problems(adapter) == [f"{adapter} doesn't contain tensors"]
