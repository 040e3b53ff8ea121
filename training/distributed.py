"""One adapter trained by several processes: `accelerate launch` (deploy/accelerate/*.yaml) or torchrun.

    accelerate launch --config_file deploy/accelerate/multi-gpu.yaml -m bot.cli.main train --now

Every process runs the same command. The main process (rank 0) does everything a single
process does: holds the store's training lock, builds the dataset, records the run,
evaluates, publishes and announces. It hands the training examples and the work
directory to the others (`Crew.send`), and all of them train together, transformers'
Trainer wrapping the model in DistributedDataParallel; only the main process writes
checkpoints and the adapter. When the main process does not train after all (another
process holds the lock, too few examples, a failure before training) it tells the
others to stop (`Crew.release`), so nobody waits for a collective that never comes.

A multi-node run needs HOME (the work directory with its checkpoints) on storage every
node sees, and the store reachable from the main node.
"""

from __future__ import annotations

from typing import Any

from training.ranks import world


def _broadcast(payload: Any) -> Any:
    """rank 0's payload on every rank (the process group is set up by accelerate's state)."""
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState()  # initialises the process group from the launcher's environment, once
    box = [payload]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class Crew:
    """The main process's side of the hand-over; a no-op when running alone."""

    def __init__(self) -> None:
        self.active = world()[1] > 1
        self.sent = False

    def send(self, train: list, validation: list, work_dir: str) -> None:
        """Start the other processes' training on these examples."""
        if self.active and not self.sent:
            self.sent = True
            _broadcast({"train": train, "validation": validation, "work_dir": work_dir})

    def release(self, reason: str) -> None:
        """Tell the others there is nothing to train (once; nothing if they were already sent work)."""
        if self.active and not self.sent:
            self.sent = True
            _broadcast({"stop": reason})


def follow(settings: Any, *, progress: bool = False) -> str | None:
    """A non-main process: wait for the main process, then train beside it.

    Returns why nothing was trained, or None after training."""
    from pathlib import Path

    from training.base import FINAL_EVAL, base_model
    from training.trainer import train_adapter

    work = _broadcast(None)
    if "stop" in work:
        return str(work["stop"])
    model_dir, _ = base_model(settings)
    train_adapter(work["train"], work["validation"], base_model_dir=model_dir, work_dir=Path(work["work_dir"]),
                  settings=settings.training, device=settings.model.device, progress=progress,
                  final_eval=FINAL_EVAL)  # as the main process: every rank must run the same collectives
    return None
