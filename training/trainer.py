"""LoRA supervised fine-tuning of the base model on approved scenes.

transformers' Trainer does the loop: seeding, gradient accumulation, linear decay with
warm-up, checkpoints and resuming, bf16 on CUDA, a progress bar, and (under
``accelerate launch --config_file deploy/accelerate/...``) several GPUs or nodes with no
change here. What is ours: the examples (loss on the scene only, see sft_tokens), which
layers get LoRA (the top ``top_layers``: backprop stops at the lowest adapted layer,
which is what makes a CPU run fit), and the loss history kept for the report.

A run works in ``work_dir``; only ``work_dir/adapter`` (PEFT's two files) leaves it, and
the caller publishes that into the registry atomically. A killed run leaves a
half-written work_dir and nothing else; the next run with the same data resumes from
its last complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from training.sft_tokens import TokenizedExample, pad_batch, tokenize_chat

log = logging.getLogger(__name__)

ADAPTER_SUBDIR = "adapter"
CHECKPOINTS_SUBDIR = "checkpoints"
WARMUP_RATIO = 0.05


@dataclass
class TrainOutcome:
    adapter_dir: Path
    steps: int
    seconds: float
    train_examples: int
    dropped_examples: int  # prompts too long to leave any of the scene inside max_seq_len
    train_tokens: int
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    resumed_from: str | None = None
    device: str = "cpu"

    def as_json(self) -> dict:
        return {"steps": self.steps, "seconds": round(self.seconds, 1), "train_examples": self.train_examples,
                "dropped_examples": self.dropped_examples, "train_tokens": self.train_tokens,
                "losses": self.losses, "eval_losses": self.eval_losses, "resumed_from": self.resumed_from,
                "device": self.device}


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16
    is emulated and slower than float32. Linux reports it in /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def mixed_bf16(precision: str, device: str) -> bool:
    """Whether matmuls run in bfloat16 (autocast; weights and LoRA stay float32 on the CPU).

    "auto": on CUDA always; on a CPU only with native bf16, where it halves the time of a
    run (benchmarks/RESULTS.md, Retraining proof). "fp32" forces float32 everywhere."""
    if precision == "fp32":
        return False
    if precision == "bf16" or device.startswith("cuda"):
        return True
    return cpu_has_native_bf16()


def load_base(model_dir: Path | str, *, device: str) -> tuple[Any, Any]:
    """Tokenizer and causal LM: bf16 weights on CUDA, float32 on the CPU (autocast may still
    run the CPU's matmuls in bf16, see mixed_bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    return tokenizer, model.to(device)


def lora_config(settings: Any, num_layers: int) -> Any:
    from peft import LoraConfig

    top = settings.top_layers
    layers = list(range(max(0, num_layers - top), num_layers)) if top and top < num_layers else None
    return LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules=list(settings.target_modules), layers_to_transform=layers,
                      bias="none", task_type="CAUSAL_LM")


def tokenize_examples(tokenizer: Any, chats: Sequence[Sequence[dict[str, str]]], *,
                      max_len: int) -> tuple[list[TokenizedExample], int]:
    kept, dropped = [], 0
    for messages in chats:
        example = tokenize_chat(tokenizer, messages, max_len=max_len)
        if example is None:
            dropped += 1
        else:
            kept.append(example)
    return kept, dropped


class _ListDataset:
    """What Trainer needs of a dataset: len and indexing (no `datasets` dependency). Items
    are mappings with `input_ids` so Trainer's length-grouped sampler can read lengths."""

    def __init__(self, items: list[TokenizedExample]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        item = self.items[index]
        return {"input_ids": item.input_ids, "labels": item.labels}


def _collate(batch: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    return pad_batch([TokenizedExample(item["input_ids"], item["labels"]) for item in batch], pad_id)


def complete_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints a resume can trust, oldest first. Trainer writes trainer_state.json after
    the weights and optimizer, so a checkpoint killed half way lacks it and is dropped."""
    found = []
    for path in sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1] or 0)):
        if (path / "trainer_state.json").is_file() and any(path.glob("adapter_model.*")):
            found.append(path)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return found


def train_adapter(train_chats: Sequence[Sequence[dict[str, str]]],
                  validation_chats: Sequence[Sequence[dict[str, str]]], *, base_model_dir: Path | str,
                  work_dir: Path, settings: Any, device: str = "auto", progress: bool = True,
                  on_step: Callable[[int, int], None] | None = None, final_eval: bool = True,
                  start_from: Path | None = None) -> TrainOutcome:
    """Train a LoRA adapter on chat examples (last message: the approved scene).

    ``start_from``: an adapter directory (the house adapter, training.house) whose weights, and
    so whose LoRA shape, the new adapter starts from instead of a fresh LoRA.

    ``settings`` is a TrainingSettings; ``on_step(step, total)`` is called as training goes
    (the scheduler keeps its lock fresh with it). ``final_eval=False`` leaves out the
    validation loss of the finished adapter when the caller measures it anyway (the
    evaluation gate does, on the same split: one pass fewer, ~40 s on the corpus proof).
    """
    import torch
    from peft import get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    from training.ranks import local_device

    device = local_device(pick_device(device))
    set_seed(settings.seed)
    tokenizer, model = load_base(base_model_dir, device=device)
    train, dropped = tokenize_examples(tokenizer, train_chats, max_len=settings.max_seq_len)
    validation, _ = tokenize_examples(tokenizer, validation_chats, max_len=settings.max_seq_len)
    if not train:
        raise ValueError("no training example leaves any of its scene inside max_seq_len; raise training.max_seq_len")
    if start_from is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(start_from), is_trainable=True)
    else:
        model = get_peft_model(model, lora_config(settings, model.config.num_hidden_layers))
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()

    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = work_dir / CHECKPOINTS_SUBDIR
    per_step = settings.batch_size * settings.grad_accum
    steps_per_epoch = max(1, math.ceil(len(train) / per_step))
    total_steps = settings.max_steps or max(1, math.ceil(steps_per_epoch * settings.epochs))
    # The validation curve: half way and at the end. Each point is a pass over the validation
    # split (~40 s on the corpus proof); the end one is left to the caller with final_eval=False.
    evaluate_at = {max(1, total_steps // 2), total_steps} if validation else set()
    if not final_eval:
        evaluate_at.discard(total_steps)
    arguments = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate,
        max_steps=total_steps,
        lr_scheduler_type="linear",
        warmup_steps=max(0, round(WARMUP_RATIO * total_steps)),
        logging_steps=1,
        save_strategy="steps",
        save_steps=settings.checkpoint_steps,
        save_total_limit=2,
        eval_strategy="no",  # Trainer's "steps" strategy also evaluates at the end: Progress decides instead
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=mixed_bf16(settings.precision, device),
        use_cpu=not device.startswith("cuda"),
        report_to=[],
        disable_tqdm=not progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # Batches of similar lengths (shuffled all the same): ~9% fewer padded tokens on the
        # corpus proof's 444 scenes, which is training time on a CPU.
        train_sampling_strategy="group_by_length",
    )

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step in evaluate_at:
                control.should_evaluate = True
            if on_step:
                on_step(state.global_step, total_steps)

    trainer = Trainer(model=model, args=arguments, train_dataset=_ListDataset(train),
                      eval_dataset=_ListDataset(validation) if validation else None,
                      data_collator=lambda batch: _collate(batch, tokenizer.pad_token_id),
                      callbacks=[Progress()])
    if not progress:  # without bars Trainer prints every log dict instead; quiet means quiet
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    resume = complete_checkpoints(checkpoints)
    resumed_from = str(resume[-1]) if resume else None
    if resumed_from:
        log.info("resuming from %s", resumed_from)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resumed_from)
    seconds = time.perf_counter() - started
    # The state's log history survives a resume (it is in the checkpoint): the whole curve.
    history = trainer.state.log_history
    losses = [(int(entry["step"]), float(entry["loss"])) for entry in history if "loss" in entry]
    eval_losses = [(int(entry["step"]), float(entry["eval_loss"])) for entry in history if "eval_loss" in entry]
    adapter_dir = work_dir / ADAPTER_SUBDIR
    if trainer.is_world_process_zero():  # under a launcher, one writer (the others share the weights)
        if adapter_dir.exists():
            shutil.rmtree(adapter_dir)
        model.save_pretrained(str(adapter_dir), safe_serialization=True)
        (work_dir / "history.json").write_text(json.dumps({"losses": losses, "eval_losses": eval_losses}))
    del trainer
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return TrainOutcome(adapter_dir=adapter_dir, steps=total_steps, seconds=seconds, train_examples=len(train),
                        dropped_examples=dropped, train_tokens=sum(len(e.input_ids) for e in train),
                        losses=losses, eval_losses=eval_losses, resumed_from=resumed_from, device=device)
