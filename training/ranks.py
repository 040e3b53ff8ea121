"""Which process of a multi-process run this is, as the launcher (accelerate, torchrun) says."""

from __future__ import annotations

import os


def world() -> tuple[int, int]:
    """(rank, number of processes) as the launcher set them; (0, 1) when run on its own."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return world()[0] == 0


def local_device(device: str) -> str:
    """A process's own GPU under a launcher (LOCAL_RANK), else `device` unchanged."""
    local = os.environ.get("LOCAL_RANK")
    if device == "cuda" and local is not None:
        return f"cuda:{int(local)}"
    return device
