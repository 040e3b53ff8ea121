"""What vLLM's LoRA loader reads from an adapter directory, checked without vLLM or torch.

Mirrors, for a Llama-family base model, the checks of vLLM's loader (checked against the
vllm-project/vllm sources: `vllm/lora/peft_helper.py` PEFTHelper.from_dict/validate_legal,
`vllm/lora/lora_model.py` LoRAModel.from_local_checkpoint, `vllm/lora/utils.py`
parse_fine_tuned_lora_name, `vllm/exceptions.py` LoRAAdapterNotFoundError):

- adapter_config.json must exist (else vLLM answers 404 "No adapter found"); r, lora_alpha
  and target_modules are required; modules_to_save must be null, DoRA is refused, bias must
  be "none", and the largest rank (r or any rank_pattern value) must be <= --max-lora-rank;
- adapter_model.safetensors holds `base_model.model.<module path>.lora_A.weight` /
  `.lora_B.weight` tensors whose module's last name is one the model supports (for Llama:
  the attention and MLP projections; vLLM lists the packed qkv_proj/gate_up_proj by their
  parts); anything else is "unexpected modules" and refused.

Stricter than vLLM where our product needs it: base_model_name_or_path present, the
`base_model.model.` prefix, both halves of every pair with consistent shapes, no embedding
or lm_head tensors (vLLM dropped embedding LoRA; PEFT writes them for modules_to_save).

Used by the fake vLLM's load endpoint (emulators/vllm.py) and by
tests/backend/test_vllm_adapter_format.py on a really trained adapter. The safetensors
header is read with the standard library: 8 bytes of little-endian length, then JSON.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterable

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."
LLAMA_LORA_MODULES = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
_ATTENTION = frozenset({"q_proj", "k_proj", "v_proj", "o_proj"})
_EMBEDDINGS = ("embed_tokens", "lm_head")


class UnsupportedLoraWeight(ValueError):
    """A tensor name parse_fine_tuned_lora_name would refuse."""


def parse_lora_name(name: str) -> tuple[str, str]:
    """(module path, "lora_A" | "lora_B") of a tensor name, the way vLLM parses it.

    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
        -> ('model.layers.0.self_attn.q_proj', 'lora_A')
    """
    parts = name.split(".")
    start = 2 if name.startswith(PREFIX) else 0
    if len(parts) > start + 2 and parts[-1] == "weight" and parts[-2] in ("lora_A", "lora_B"):
        return ".".join(parts[start:-2]), parts[-2]
    if parts[-1] in ("lora_embedding_A", "lora_embedding_B"):
        return ".".join(parts[start:-1]), "lora_A" if parts[-1].endswith("A") else "lora_B"
    raise UnsupportedLoraWeight(f"{name} is unsupported LoRA weight")


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> {"dtype", "shape", "data_offsets"}; the "__metadata__" entry is dropped."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path} is not a safetensors file (no header length)")
        (length,) = struct.unpack("<Q", raw)
        if length > 100_000_000:
            raise ValueError(f"{path} is not a safetensors file (header of {length} bytes)")
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def adapter_problems(directory: Path | str, *, max_lora_rank: int = 16,
                     supported: Iterable[str] = LLAMA_LORA_MODULES,
                     model_config: dict[str, Any] | None = None) -> list[str]:
    """Why vLLM would refuse (or we would not ship) this adapter; [] when it loads.

    Raises FileNotFoundError when there is no adapter_config.json: vLLM's 404 case.
    `model_config` (the base model's config.json) adds a check of every tensor's shape.
    """
    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    problems = _config_problems(config, max_lora_rank=max_lora_rank)
    if not (directory / WEIGHTS).is_file():
        return [*problems, f"{directory} doesn't contain tensors"]
    try:
        header = read_safetensors_header(directory / WEIGHTS)
    except (OSError, ValueError) as exc:
        return [*problems, f"unreadable {WEIGHTS}: {exc}"]
    shapes = llama_module_shapes(model_config) if model_config else None
    return problems + _tensor_problems(header, config, frozenset(supported), shapes)


def _config_problems(config: dict[str, Any], *, max_lora_rank: int) -> list[str]:
    missing = sorted({"r", "lora_alpha", "target_modules"} - set(config))
    if missing:
        return [f"Missing required configuration fields: {set(missing)}"]
    problems = []
    if config.get("peft_type") != "LORA":
        problems.append(f"peft_type is {config.get('peft_type')!r}, not 'LORA'")
    rank = config["r"]
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        problems.append(f"r must be a positive integer, not {rank!r}")
        rank = 0
    if not isinstance(config["lora_alpha"], (int, float)) or isinstance(config["lora_alpha"], bool):
        problems.append(f"lora_alpha must be a number, not {config['lora_alpha']!r}")
    if not isinstance(config["target_modules"], (list, str)):
        problems.append(f"target_modules must be a list or a string, not {config['target_modules']!r}")
    if config.get("modules_to_save"):
        problems.append("vLLM only supports modules_to_save being None.")
    if config.get("use_dora"):
        problems.append("vLLM does not yet support DoRA.")
    if not isinstance(config.get("use_rslora", False), bool):
        problems.append(f"use_rslora must be true or false, not {config['use_rslora']!r}")
    largest = max([rank, *(config.get("rank_pattern") or {}).values()])
    if largest > max_lora_rank:
        problems.append(f"LoRA rank {largest} is greater than max_lora_rank {max_lora_rank}.")
    if config.get("bias", "none") != "none":
        problems.append("Adapter bias is not supported.")
    if not isinstance(config.get("base_model_name_or_path"), str) or not config["base_model_name_or_path"]:
        problems.append("base_model_name_or_path is missing: the adapter does not say which model it adapts")
    return problems


def _tensor_problems(header: dict[str, dict[str, Any]], config: dict[str, Any], supported: frozenset[str],
                     shapes: dict[str, tuple[int, int]] | None) -> list[str]:
    problems, pairs, unexpected = [], {}, []
    for name, info in sorted(header.items()):
        try:
            module, kind = parse_lora_name(name)
        except UnsupportedLoraWeight as exc:
            problems.append(str(exc))
            continue
        if not name.startswith(PREFIX):
            problems.append(f"{name} does not start with {PREFIX!r} (PEFT's prefix)")
        leaf = module.rsplit(".", 1)[-1]
        if leaf in _EMBEDDINGS or "lora_embedding" in name:
            problems.append(f"{name} adapts {leaf}: embedding and lm_head LoRA are not served")
        elif leaf not in supported:
            unexpected.append(module)
        pairs.setdefault(module, {})[kind] = list(info.get("shape", []))
    if unexpected:
        problems.append(f"expected target modules in {sorted(supported)} but received {unexpected}. "
                        "Please verify that the loaded LoRA module is correct")
    if not pairs:
        problems.append(f"{WEIGHTS} holds no LoRA tensors")
    for module, halves in sorted(pairs.items()):
        problems += _pair_problems(module, halves, _rank_of(module, config), shapes)
    return problems


def _rank_of(module: str, config: dict[str, Any]) -> int:
    """PEFT's rank_pattern overrides r for modules whose path ends with a pattern key."""
    for pattern, rank in (config.get("rank_pattern") or {}).items():
        if module == pattern or module.endswith("." + pattern):
            return rank
    return config["r"]


def _pair_problems(module: str, halves: dict[str, list[int]], rank: int,
                   shapes: dict[str, tuple[int, int]] | None) -> list[str]:
    if set(halves) != {"lora_A", "lora_B"}:
        return [f"{module} has {sorted(halves)} only; a LoRA layer needs lora_A and lora_B"]
    a, b = halves["lora_A"], halves["lora_B"]
    if len(a) != 2 or len(b) != 2 or a[0] != rank or b[1] != rank:
        return [f"{module}: lora_A {a} / lora_B {b} are not (r, in) / (out, r) with r={rank}"]
    leaf = module.rsplit(".", 1)[-1]
    if shapes and leaf in shapes and (a[1], b[0]) != shapes[leaf]:
        return [f"{module}: (in, out) = {(a[1], b[0])}, the base model's layer is {shapes[leaf]}"]
    return []


def llama_module_shapes(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each LoRA-able linear layer of a Llama-family config.json."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    return {"q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv_heads * head_dim),
            "v_proj": (hidden, kv_heads * head_dim), "o_proj": (heads * head_dim, hidden),
            "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden)}


# ---- writing a synthetic adapter (for tests that need many, fast, without torch) ------------

TINY_LLAMA = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
              "num_hidden_layers": 2}


def write_lora_adapter(directory: Path, *, r: int = 8, modules: Iterable[str] = ("q_proj", "v_proj"),
                       model_config: dict[str, Any] = TINY_LLAMA, base_model: str = "tiny-chat",
                       **config_fields: Any) -> Path:
    """A PEFT-shaped LoRA directory (zero weights) for a Llama model: what PEFT's
    save_pretrained writes, minus the values. `config_fields` override adapter_config.json."""
    directory.mkdir(parents=True, exist_ok=True)
    shapes = llama_module_shapes(model_config)
    tensors = {}
    for layer in range(model_config["num_hidden_layers"]):
        for leaf in modules:
            block = "self_attn" if leaf in _ATTENTION else "mlp"
            stem = f"{PREFIX}model.layers.{layer}.{block}.{leaf}"
            fan_in, fan_out = shapes[leaf]
            tensors[f"{stem}.lora_A.weight"] = [r, fan_in]
            tensors[f"{stem}.lora_B.weight"] = [fan_out, r]
    write_zero_safetensors(directory / WEIGHTS, tensors)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
              "target_modules": sorted(modules), "bias": "none", "use_dora": False, "use_rslora": False,
              "modules_to_save": None, "base_model_name_or_path": base_model, **config_fields}
    (directory / CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    return directory


def write_zero_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    """A float32 safetensors file of zeros with these tensor names and 2-D shapes."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 4 * shape[0] * shape[1]  # F32
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the format allows space padding; 8-byte alignment as writers do
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
