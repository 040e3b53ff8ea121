"""Hot-swapped LoRA adapters in the backend, from the registry on disk.

Adapters are real PEFT LoRA adapters (r=4 on q_proj, v_proj) of the tiny Llama, with
random non-zero lora_B so each one visibly changes the logits.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from registry import versions as reg
from registry.versions import RegistryError
from tests.backend.conftest import BASE, make_adapter, publish


def base_model(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


# ---- adapters in the backend -------------------------------------------------------------

def adapter_set(model_dir: Path, registry: Path):
    from backend.adapters import AdapterSet

    return AdapterSet(base_model(model_dir), registry=registry, base_name=BASE)


def logits(adapters, rows, input_ids):
    import torch

    with torch.no_grad():
        return adapters.forward(rows, input_ids=input_ids).logits


@pytest.fixture
def ids():
    import torch

    return torch.randint(5, 300, (3, 9), generator=torch.Generator().manual_seed(0))


def test_two_versions_load_list_and_change_the_output(registry: Path, sources, tiny_model_dir: Path, ids) -> None:
    from backend.adapters import peft_adapter_name

    publish(registry, "forward", sources["a"])  # a torch Module attribute: PEFT must not see it bare
    publish(registry, "v2.1", sources["b"])  # '.' is fine: PEFT gets an internal name
    adapters = adapter_set(tiny_model_dir, registry)
    plain = logits(adapters, [None] * 3, ids)

    report = adapters.sync()
    assert report.loaded == ["forward", "v2.1"] and adapters.names() == [BASE, "forward", "v2.1"]
    assert (adapters.resolve(BASE), adapters.resolve("v2.1")) == (None, "v2.1")
    with pytest.raises(KeyError):
        adapters.resolve("v9")

    base, v1, v2 = (logits(adapters, [row] * 3, ids) for row in (None, "forward", "v2.1"))
    assert (base - plain).abs().max() == 0
    assert (v1 - base).abs().max() > 1e-3 and (v2 - base).abs().max() > 1e-3 and (v1 - v2).abs().max() > 1e-3
    assert adapters.sync().changed is False
    assert (adapters.peft_name("v2.1"), peft_adapter_name("forward")) == ("wr_v2D1", "wr_forward")


def test_mixed_batch_rows_equal_single_runs(registry: Path, sources, tiny_model_dir: Path, ids) -> None:
    import torch

    publish(registry, "v1", sources["a"])
    publish(registry, "v2", sources["b"])
    adapters = adapter_set(tiny_model_dir, registry)
    adapters.sync()
    rows = [None, "v1", "v2"]
    peft_model = adapters.model

    def alone(i: int, **inputs):
        if rows[i] is None:
            with peft_model.disable_adapter():
                return peft_model(**inputs)
        peft_model.set_adapter(adapters.peft_name(rows[i]))
        return peft_model(**inputs)

    with torch.no_grad():
        mixed = adapters.forward(rows, input_ids=ids, use_cache=True)
        step = ids[:, -1:].clone()  # one decode step on the mixed KV cache
        mixed_next = adapters.forward(rows, input_ids=step, cache=mixed.cache, use_cache=True)
        for i in range(3):
            single = alone(i, input_ids=ids[i:i + 1], use_cache=True)
            torch.testing.assert_close(mixed.logits[i], single.logits[0], rtol=0, atol=1e-5)
            single_next = alone(i, input_ids=step[i:i + 1], cache=single.cache, use_cache=True)
            torch.testing.assert_close(mixed_next.logits[i], single_next.logits[0], rtol=0, atol=1e-5)

        # HF generate takes the same argument (greedy, so rows must match their single runs).
        generated = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                        max_new_tokens=4, adapter_names=adapters.adapter_names(rows))
        for i in range(3):
            if rows[i] is None:
                with peft_model.disable_adapter():
                    single = peft_model.generate(input_ids=ids[i:i + 1], do_sample=False, max_new_tokens=4)
            else:
                peft_model.set_adapter(adapters.peft_name(rows[i]))
                single = peft_model.generate(input_ids=ids[i:i + 1], do_sample=False, max_new_tokens=4)
            assert generated[i].tolist() == single[0].tolist()


def test_loading_waits_for_the_forward_lock(registry: Path, sources, tiny_model_dir: Path) -> None:
    adapters = adapter_set(tiny_model_dir, registry)
    publish(registry, "v1", sources["a"])
    with adapters.lock:  # what the generation worker holds around a decode step
        syncing = threading.Thread(target=adapters.sync)
        syncing.start()
        syncing.join(0.3)
        assert syncing.is_alive() and not adapters.is_peft  # no adapter appears mid-step
    syncing.join(10)
    assert adapters.names() == [BASE, "v1"]


def test_foreign_base_model_is_refused_with_a_warning(registry: Path, sources, tiny_model_dir: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    publish(registry, "foreign", sources["a"], base_model="some-other-model")
    publish(registry, "v1", sources["b"])
    reg.promote(registry, "foreign")
    adapters = adapter_set(tiny_model_dir, registry)
    with caplog.at_level(logging.WARNING, logger="backend.adapters"):
        report = adapters.sync()
    assert report.loaded == ["v1"] and "some-other-model" in report.refused["foreign"]
    assert "'foreign' was trained on base model 'some-other-model'" in caplog.text
    assert adapters.names() == [BASE, "v1"]
    assert adapters.serving_name() == BASE  # a pointer to a refused version falls back to the base
    caplog.clear()
    assert not adapters.sync().refused and not caplog.text  # refused once, not every poll
    with pytest.raises(RegistryError, match="'foreign'"):
        adapters.load("foreign")


def test_broken_adapter_leaves_the_model_as_it_was(registry: Path, tmp_path: Path, tiny_model_dir: Path,
                                                   sources, ids) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    wider = tmp_path / "wider"
    LlamaForCausalLM(LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(wider)
    publish(registry, "wrong-shape", make_adapter(wider, tmp_path / "wrong", 3))  # manifest claims our base
    adapters = adapter_set(tiny_model_dir, registry)
    before = logits(adapters, [None] * 3, ids)
    report = adapters.sync()
    assert "'wrong-shape' failed to load" in report.refused["wrong-shape"]
    assert adapters.names() == [BASE] and not adapters.is_peft
    assert not hasattr(adapters.model, "peft_config")  # no LoRA layers left injected
    assert type(adapters.model.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert (logits(adapters, [None] * 3, ids) - before).abs().max() == 0

    publish(registry, "v1", sources["a"])  # a good one still loads after it
    assert adapters.sync().loaded == ["v1"]
    with_v1 = logits(adapters, [None, "v1", "v1"], ids)
    assert (with_v1[0] - before[0]).abs().max() == 0

    shutil.copytree(registry / "wrong-shape", registry / "wrong-again")  # now into a PeftModel
    manifest = json.loads((registry / "wrong-again" / reg.MANIFEST).read_text())
    (registry / "wrong-again" / reg.MANIFEST).write_text(json.dumps({**manifest, "version": "wrong-again"}))
    assert "'wrong-again' failed to load" in adapters.sync().refused["wrong-again"]
    assert list(adapters.model.peft_config) == [adapters.peft_name("v1")]
    assert (logits(adapters, [None, "v1", "v1"], ids) - with_v1).abs().max() == 0


def test_watcher_picks_up_new_versions_and_drops_deleted_ones(registry: Path, sources, tiny_model_dir: Path) -> None:
    publish(registry, "v1", sources["a"])
    adapters = adapter_set(tiny_model_dir, registry)
    adapters.sync()
    peft_model, base = adapters.model, adapters.model.get_base_model()

    def wait_for(names: list[str]) -> None:
        deadline = time.monotonic() + 10
        while adapters.names() != names:
            assert time.monotonic() < deadline, f"still {adapters.names()}, want {names}"
            time.sleep(0.02)

    adapters.start_watcher(0.05)
    try:
        publish(registry, "v2", sources["b"])
        wait_for([BASE, "v1", "v2"])
        reg.remove_version(registry, "v1")
        wait_for([BASE, "v2"])
    finally:
        adapters.stop_watcher()
    assert adapters.model is peft_model and adapters.model.get_base_model() is base  # swapped in place


def test_a_version_in_use_is_unloaded_only_after_release(registry: Path, sources, tiny_model_dir: Path) -> None:
    publish(registry, "v1", sources["a"])
    adapters = adapter_set(tiny_model_dir, registry)
    adapters.sync()
    assert adapters.acquire("v1") == "v1"
    reg.remove_version(registry, "v1")
    assert adapters.sync().deferred == ["v1"] and "v1" in adapters.names()
    adapters.release("v1")
    assert adapters.sync().unloaded == ["v1"] and adapters.names() == [BASE]


def test_serving_name_follows_the_pointer(registry: Path, sources, tiny_model_dir: Path) -> None:
    publish(registry, "v1", sources["a"])
    publish(registry, "v2", sources["b"])
    adapters = adapter_set(tiny_model_dir, registry)
    adapters.sync()
    assert adapters.serving_name() == BASE
    reg.promote(registry, "v1")
    reg.promote(registry, "v2")
    reg.promote(registry, "v1", room="C9")
    adapters.sync()
    assert (adapters.serving_name(), adapters.serving_name("C9"), adapters.serving_name("C1")) == ("v2", "v1", "v2")
    reg.rollback(registry)
    adapters.sync()
    assert adapters.serving_name() == "v1"


def test_base_weights_unchanged_after_loading_and_unloading(registry: Path, sources, tiny_model_dir: Path,
                                                            ids) -> None:
    import torch

    publish(registry, "v1", sources["a"])
    publish(registry, "v2", sources["b"])
    adapters = adapter_set(tiny_model_dir, registry)
    before = {name: tensor.clone() for name, tensor in adapters.model.state_dict().items()}
    plain = logits(adapters, [None] * 3, ids)

    adapters.sync()
    q_proj = adapters.model.get_base_model().model.layers[0].self_attn.q_proj
    assert torch.equal(q_proj.base_layer.weight, before["model.layers.0.self_attn.q_proj.weight"])
    logits(adapters, [None, "v1", "v2"], ids)
    adapters.unload("v1")
    adapters.unload("v2")

    assert not adapters.is_peft
    after = adapters.model.state_dict()
    assert after.keys() == before.keys()  # no LoRA tensors left behind
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert type(adapters.model.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert (logits(adapters, [None] * 3, ids) - plain).abs().max() == 0
    adapters.load("v2")  # and it wraps again after going back to the plain model
    assert adapters.names() == [BASE, "v2"]
