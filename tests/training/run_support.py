"""Shared by the training-run tests: a tiny model as the base, small settings, scenes in the store."""

from __future__ import annotations

import json
from typing import Any

SCENE = "INT. KITCHEN - NIGHT\n\nMAYA\nYou sold us out.\n\nCOLE\nI kept you alive."

#: Small, fast settings: a few steps on the tiny model, a short scene per evaluation sample.
TRAIN_ENV = {
    "WRITERSROOM_MODEL_DEVICE": "cpu",
    "WRITERSROOM_GENERATION_MAX_TOKENS": "24",
    "WRITERSROOM_TRAINING_LORA_R": "4",
    "WRITERSROOM_TRAINING_LORA_ALPHA": "8",
    "WRITERSROOM_TRAINING_LORA_DROPOUT": "0",
    "WRITERSROOM_TRAINING_TOP_LAYERS": "1",
    "WRITERSROOM_TRAINING_TARGET_MODULES": '["q_proj", "v_proj", "o_proj"]',
    "WRITERSROOM_TRAINING_LEARNING_RATE": "0.05",
    "WRITERSROOM_TRAINING_MAX_STEPS": "8",
    "WRITERSROOM_TRAINING_BATCH_SIZE": "4",
    "WRITERSROOM_TRAINING_GRAD_ACCUM": "1",
    "WRITERSROOM_TRAINING_CHECKPOINT_STEPS": "2",
    "WRITERSROOM_TRAINING_MAX_SEQ_LEN": "1024",
    "WRITERSROOM_TRAINING_MIN_EXAMPLES": "6",
    "WRITERSROOM_TRAINING_EVAL_GENERATIONS": "2",
    "WRITERSROOM_TRAINING_EVAL_SCREENPLAY_SCENES": "4",
    "WRITERSROOM_TRAINING_LOCK_STALE_S": "2",
}


def import_scenes(count: int, *, start: int = 0, room: str | None = None) -> None:
    """`count` approved scenes in the store, as `writersroom feedback import` stores them."""
    from config.settings import load_settings
    from training.feedback_format import iter_feedback, record
    from training.feedback_import import import_lines
    from training.run import _sessions

    lines = [json.dumps(record(prompt=f"a detective corners her partner, take {n} characters: Maya, Cole",
                               text=SCENE)) for n in range(start, start + count)]
    import_lines(_sessions(load_settings()), list(iter_feedback(lines)), source="tests", room=room, progress=False)


def run_rows() -> list[dict[str, Any]]:
    """Every training run row, oldest first."""
    from config.settings import load_settings
    from store.db import session_scope
    from store.training_runs import recent_runs
    from training.run import _sessions

    with session_scope(_sessions(load_settings())) as session:
        return [{"id": r.id, "status": str(r.status), "adapter_version": r.adapter_version, "notes": r.notes,
                 "metrics": dict(r.metrics), "example_count": r.example_count}
                for r in reversed(recent_runs(session))]
