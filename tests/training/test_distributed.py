"""Several processes train one adapter under `accelerate launch` with the shipped configs.

The multi-process path runs for real on the CPU (gloo, deploy/accelerate/multi-cpu.yaml);
the GPU configs cannot run here, so they are checked with accelerate's own config loader
for what the multi-process code relies on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import load_settings
from registry import versions as registry
from tests.training.run_support import import_scenes, run_rows

ACCELERATE = Path(__file__).resolve().parents[2] / "deploy" / "accelerate"


@pytest.mark.parametrize("name", ["multi-gpu.yaml", "multi-node.yaml", "multi-cpu.yaml"])
def test_the_accelerate_configs_load_with_accelerate(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(ACCELERATE / name)
    assert config.num_processes >= 2 and config.main_training_function == "main"
    if name == "multi-cpu.yaml":
        assert config.distributed_type == "MULTI_CPU" and config.use_cpu
    else:
        assert config.distributed_type == "MULTI_GPU" and config.mixed_precision == "bf16" and not config.use_cpu
    if name == "multi-node.yaml":
        assert config.num_machines == 2 and config.main_process_ip and config.main_process_port
        assert config.num_processes % config.num_machines == 0  # the same GPU count on every node


@pytest.mark.usefixtures("tiny_training_env")
def test_two_processes_train_one_adapter_and_only_the_main_process_publishes(monkeypatch):
    import_scenes(12)
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate is a dependency of the ml extra"
    outcome = subprocess.run(
        [launcher, "launch", "--config_file", str(ACCELERATE / "multi-cpu.yaml"), "--main_process_port", "0",
         "-m", "bot.cli.main", "train", "--now", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    # One report on standard output: the main process's.
    printed = json.loads(outcome.stdout[outcome.stdout.index("{"):])
    assert printed["status"] in ("succeeded", "rejected") and printed["examples"] == 12
    [row] = run_rows()
    assert row["adapter_version"] == printed["version"]
    assert [v.version for v in registry.list_versions(load_settings().adapter_dir)] == [printed["version"]]


@pytest.mark.usefixtures("tiny_training_env")
def test_the_helper_processes_stop_when_the_main_process_has_nothing_to_train():
    import_scenes(2)  # too few: the main process refuses, and must release the other one
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    outcome = subprocess.run(
        [launcher, "launch", "--config_file", str(ACCELERATE / "multi-cpu.yaml"), "--main_process_port", "0",
         "-m", "bot.cli.main", "train", "--now", "--quiet"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert outcome.returncode != 0 and "training needs at least" in outcome.stderr
    assert run_rows() == []
