"""The bots' and the trainer's Prometheus metrics (the backend keeps its own in backend/app.py).

One registry per process, exported by the ops server at /metrics. Names follow
Prometheus conventions: a unit suffix, `_total` added to counters by the client.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

# Chat side: what writers asked for, how long it took, what the room thought of it.
COMMANDS = Counter("writersroom_bot_commands", "Chat commands handled", ["platform", "command", "outcome"],
                   registry=REGISTRY)
COMMAND_SECONDS = Histogram("writersroom_bot_command_seconds", "Time from command to reply",
                            ["platform", "command"], buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320),
                            registry=REGISTRY)
COMMANDS_IN_PROGRESS = Gauge("writersroom_bot_commands_in_progress", "Commands being worked on now (the bot's queue)",
                             ["platform"], registry=REGISTRY)
BACKEND_REQUESTS = Counter("writersroom_bot_backend_requests", "Chat-completion calls to the generation backend",
                           ["outcome"], registry=REGISTRY)
BACKEND_SECONDS = Histogram("writersroom_bot_backend_seconds", "Time per chat-completion call, retries included",
                            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160), registry=REGISTRY)
COMPLETION_TOKENS = Counter("writersroom_bot_completion_tokens", "Tokens the backend generated for this bot",
                            ["model"], registry=REGISTRY)
FEEDBACK = Counter("writersroom_bot_feedback", "Approve, reject, edit and regenerate clicks recorded",
                   ["platform", "kind"], registry=REGISTRY)
SCENES_APPROVED = Counter("writersroom_bot_scenes_approved", "Scenes that reached the room's approval quorum",
                          ["platform"], registry=REGISTRY)

# Trainer: runs, what became of them, and how much approved material waits.
TRAINING_RUNS = Counter("writersroom_trainer_runs", "Training runs finished", ["trigger", "outcome"],
                        registry=REGISTRY)
TRAINING_SECONDS = Histogram("writersroom_trainer_run_seconds", "Wall time of a training run, gate included",
                             buckets=(60, 300, 600, 1200, 1800, 3600, 7200, 14400), registry=REGISTRY)
TRAINING_ACTIVE = Gauge("writersroom_trainer_run_active", "1 while a training run is under way", registry=REGISTRY)
LAST_RUN_TIMESTAMP = Gauge("writersroom_trainer_last_run_timestamp_seconds", "When the last run of each outcome ended",
                           ["outcome"], registry=REGISTRY)
PENDING_APPROVALS = Gauge("writersroom_trainer_pending_approvals", "Approved scenes not yet trained on",
                          registry=REGISTRY)
