"""Every command docs/deployment.md and docs/runbook.md tell an operator to type exists."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    DOCS,
    REPO,
    accelerate_config,
    docs_invocation,
    looks_like_setting,
    parse_cli,
    setting_env_names,
    shell_commands,
    writersroom_args,
)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_commands_parse_with_the_real_cli(path):
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    checked = 0
    for line, argv in shell_commands(path):
        found = docs_invocation(argv)
        if found is None:
            continue
        config = accelerate_config(found)
        assert config is None or (REPO / config).is_file(), f"{path.name}:{line}: {config} does not exist"
        parse_cli(writersroom_args(found), f"{path.name}:{line}")
        checked += 1
    assert checked >= 5, f"{path.name}: expected its shell blocks to show writersroom commands"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_documented_setting_names_are_real(path):
    names = set(re.findall(r"\b((?:WRITERSROOM|SLACK|DISCORD)_[A-Z0-9_]+)\b", path.read_text()))
    unknown = sorted(name for name in names if looks_like_setting(name) and name not in setting_env_names())
    assert not unknown, f"{path.relative_to(REPO)} names {unknown}, which are not settings"
