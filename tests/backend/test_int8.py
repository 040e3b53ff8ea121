"""The int8 copy a CPU backend may decode with (model.cpu_int8): it serves while no adapter is
loaded, the full-precision model serves (base rows included) while one is, and either way the
engine's batches compute what a row would alone."""

from __future__ import annotations

from pathlib import Path

from backend.adapters import AdapterSet
from backend.engine import BatchEngine, Row
from backend.generator import ChatGenerator
from backend.sampling import SamplingParams
from registry import versions as reg
from tests.backend.conftest import BASE, publish

PROMPTS = ["MAYA", "COLE", "You sold us out.", "INT. KITCHEN - NIGHT"]


def int8_generator(model_dir: Path) -> ChatGenerator:
    return ChatGenerator(model_dir, name=BASE, device="cpu", cpu_int8=True)


def alone_and_batched(generator: ChatGenerator) -> tuple[list[list[int]], list[list[int]]]:
    params = SamplingParams(max_tokens=10, temperature=0.0)

    def row(text: str) -> Row:
        return Row(generator.encode_prompt([{"role": "user", "content": text}], 10), params)

    alone = []
    for text in PROMPTS:
        engine, single = BatchEngine(generator), row(text)
        engine.admit([single])
        while engine.rows:
            engine.step()
        alone.append(single.generated)
    engine, rows = BatchEngine(generator), [row(text) for text in PROMPTS]
    engine.admit(rows[:2])
    engine.step()
    engine.admit(rows[2:])
    while engine.rows:
        engine.step()
    return alone, [row.generated for row in rows]


def test_the_int8_copy_serves_and_batches_like_single_rows(tiny_model_dir: Path) -> None:
    import torch

    generator = int8_generator(tiny_model_dir)
    assert generator.quantized
    assert any(isinstance(module, torch.ao.nn.quantized.dynamic.Linear) for module in generator.model.modules())
    assert not any(type(module) is torch.nn.Linear for module in generator.model.modules())
    alone, batched = alone_and_batched(generator)
    assert batched == alone and all(len(tokens) == 10 for tokens in alone)


def test_a_cpu_backend_without_the_setting_runs_full_precision(tiny_model_dir: Path) -> None:
    generator = ChatGenerator(tiny_model_dir, name=BASE, device="cpu")
    assert not generator.quantized
    assert generator.model is generator._base_model


def test_an_adapter_moves_serving_to_full_precision_and_back(tiny_model_dir: Path, registry: Path, sources) -> None:
    generator = int8_generator(tiny_model_dir)
    adapters = AdapterSet(generator._base_model, registry=registry, base_name=BASE)
    generator.attach_adapters(adapters)
    assert generator.quantized  # attached, nothing loaded yet
    publish(registry, "v1", sources["a"])
    adapters.sync()
    assert not generator.quantized and generator.model is adapters.model  # PEFT cannot wrap int8 layers
    alone, batched = alone_and_batched(generator)  # base rows through the full-precision PeftModel
    assert batched == alone
    reg.remove_version(registry, "v1")
    adapters.sync()
    assert generator.quantized  # the adapter is gone: back to the int8 copy
