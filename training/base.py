"""What every process of a training run agrees on: the base model, and whether the trainer
measures the finished adapter itself (every rank must run the same collectives)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.settings import Settings

#: The finished adapter's validation loss comes from the gate, which measures it anyway.
FINAL_EVAL = False


def base_model(settings: Settings) -> tuple[Path, str]:
    """The base model's directory and the name the backend serves it under."""
    from backend.provision import GENERATOR_NAME, resolve_model
    from backend.serve import model_name, serving_generator

    # The model that serves is the model adapters are trained on.
    path = resolve_model(serving_generator(settings), default_name=GENERATOR_NAME, cache_dir=settings.model_cache_dir)
    return Path(path), model_name(settings)


def training_settings_json(settings: Settings) -> dict[str, Any]:
    """The settings that shape the adapter (not the schedule or chat channels): the manifest's."""
    keep = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "top_layers", "learning_rate", "epochs",
            "max_steps", "max_seq_len", "batch_size", "grad_accum", "precision", "seed", "validation_share")
    dumped = settings.training.model_dump()
    return {key: dumped[key] for key in keep}
