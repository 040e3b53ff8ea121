"""bot.core stays platform- and model-neutral: importing every core module pulls in no
chat SDK and no ML framework (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import bot.core
from config.settings import REPO_ROOT

FORBIDDEN = ("slack_bolt", "slack_sdk", "discord", "torch", "transformers", "sentence_transformers", "faiss")


def test_core_imports_no_platform_or_ml_package():
    modules = [f"bot.core.{info.name}" for info in pkgutil.iter_modules(bot.core.__path__)]
    assert "bot.core.commands" in modules and "bot.core.dialogue" in modules
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert json.loads(result.stdout) == []


def test_the_probe_would_notice_a_forbidden_import():
    probe = "import sys, bot.core.commands, slack_bolt; print('slack_bolt' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == "True"
