"""deploy/systemd: one GPU box, units that run the installed CLI with the secrets file."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.deploy.manifests import (
    REPO,
    SYSTEMD_UNITS,
    looks_like_setting,
    parse_cli,
    setting_env_names,
    unit,
    unit_values,
    writersroom_args,
)

CLI = "/opt/writersroom/.venv/bin/writersroom"
ENV_FILE = "/etc/writersroom/writersroom.env"
UNITS = {path.name: path for path in SYSTEMD_UNITS}


def rel(path) -> str:
    return str(path.relative_to(REPO))


def test_the_units_are_there():
    expected = {f"writersroom-{name}.service" for name in ("backend", "slack", "discord", "trainer")}
    assert expected <= set(UNITS), f"deploy/systemd: missing {sorted(expected - set(UNITS))}"


@pytest.mark.parametrize("path", SYSTEMD_UNITS, ids=lambda p: p.name)
def test_exec_start_runs_the_installed_cli_with_a_valid_command_line(path):
    lines = unit_values(path, "Service", "ExecStart")
    assert lines, f"{rel(path)}: no ExecStart="
    for line in lines:
        argv = shlex.split(line.lstrip("-@+!:"))
        assert argv[0] == CLI, f"{rel(path)}: ExecStart= runs {argv[0]}, not the installed {CLI}"
        parse_cli(writersroom_args(argv), f"{rel(path)} ExecStart")


@pytest.mark.parametrize("path", SYSTEMD_UNITS, ids=lambda p: p.name)
def test_units_run_as_the_dedicated_user_with_the_secrets_file(path):
    service = dict(unit(path)["Service"])
    assert service.get("User") == "writersroom" and service.get("Group") == "writersroom", \
        f"{rel(path)}: User= and Group= must be the dedicated writersroom account"
    assert unit_values(path, "Service", "EnvironmentFile") == [ENV_FILE], f"{rel(path)}: EnvironmentFile={ENV_FILE}"
    if service.get("Type", "simple") == "simple":
        assert service.get("Restart") == "on-failure", f"{rel(path)}: Restart=on-failure"


@pytest.mark.parametrize("path", SYSTEMD_UNITS, ids=lambda p: p.name)
def test_environment_names_are_real_settings(path):
    names = [re.split(r"=", assignment, 1)[0] for line in unit_values(path, "Service", "Environment")
             for assignment in shlex.split(line)]
    unknown = [name for name in names if looks_like_setting(name) and name not in setting_env_names()]
    assert not unknown, f"{rel(path)}: Environment= sets {unknown}, which are not settings"


@pytest.mark.parametrize("bot", ["slack", "discord"])
def test_bots_start_after_the_backend(bot):
    path = UNITS[f"writersroom-{bot}.service"]
    after = " ".join(unit_values(path, "Unit", "After")).split()
    wants = " ".join(unit_values(path, "Unit", "Wants") + unit_values(path, "Unit", "Requires")).split()
    assert "writersroom-backend.service" in after and "writersroom-backend.service" in wants, \
        f"{rel(path)}: After= and Wants= writersroom-backend.service"


@pytest.mark.parametrize("path", SYSTEMD_UNITS, ids=lambda p: p.name)
def test_units_named_in_ordering_exist(path):
    named = [n for key in ("After", "Wants", "Requires") for line in unit_values(path, "Unit", key) for n in line.split()]
    missing = [n for n in named if n.startswith("writersroom") and n not in UNITS]
    assert not missing, f"{rel(path)}: names {missing}, which deploy/systemd does not have"
