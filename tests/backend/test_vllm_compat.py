"""writersroom against vLLM: `adapters vllm-sync` keeps vLLM's LoRAs equal to the registry,
and the bot's /dialogue uses a promoted version once vLLM lists it.

vLLM is emulators/vllm.py on loopback (its routes, bodies and status codes as
vLLM's sources define them; its load endpoint validates adapters as vLLM's loader does).
The registry's versions are synthetic PEFT-shaped adapters (tests/support/vllm_lora_format.py);
test_vllm_adapter_format.py proves a really trained one has the same shape.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from backend.vllm_sync import VllmClient, VllmError, sync_once, watch
from bot.cli.main import app
from bot.core.commands import dispatch
from bot.core.replies import Invocation
from config.settings import REPO_ROOT
from emulators.core_services import make_core_services
from emulators.servers import free_port
from emulators.vllm import FakeVllm
from emulators.vllm_lora_format import write_lora_adapter
from registry import versions as reg
from store import generations
from store.db import session_scope

BASE = "smollm2"
OLD, NEW = "v20261201-0412-ab12", "r0002-cafe1234"
ROOT = "/adapters"  # the registry as mounted in vLLM's container


def publish(registry: Path, version: str, *, created_at: str = "2026-12-01T04:12:00+00:00", **adapter) -> None:
    source = write_lora_adapter(registry.parent / "peft-out" / version, **adapter)
    reg.write_adapter_version(registry, version, source=source, base_model=BASE, created_at=created_at)


@pytest.fixture
def registry(isolated_home: Path) -> Path:
    path = isolated_home / "adapters"
    publish(path, OLD)
    publish(path, NEW, created_at="2026-12-02T04:12:00+00:00")
    return path


@pytest.fixture
def admin_dir(tmp_path: Path) -> Path:
    """Adapters an admin keeps outside the registry, mounted at /admin in vLLM."""
    return tmp_path / "admin"


@pytest.fixture
def vllm(registry: Path, admin_dir: Path):
    with FakeVllm(base_name=BASE, mounts={ROOT: registry, "/admin": admin_dir}) as fake:
        yield fake


@pytest.fixture
def client(vllm: FakeVllm):
    client = VllmClient(vllm.url)
    yield client
    client.close()


def lora_roots(client: VllmClient) -> dict[str, str]:
    return {card["id"]: card["root"] for card in client.models() if card["parent"] is not None}


def test_every_version_is_loaded_under_its_name_from_the_mounted_registry(registry, vllm, client) -> None:
    report = sync_once(client, registry, adapter_root=ROOT)

    assert report.ok and report.loaded == [OLD, NEW] and report.base_models == [BASE]
    assert lora_roots(client) == {OLD: f"{ROOT}/{OLD}", NEW: f"{ROOT}/{NEW}"}
    cards = httpx.get(f"{vllm.url}/models").json()["data"]
    assert [(c["id"], c["parent"], c["object"], c["owned_by"]) for c in cards] == [
        (BASE, None, "model", "vllm"), (OLD, BASE, "model", "vllm"), (NEW, BASE, "model", "vllm")]
    assert cards[0]["root"] == vllm.base_path and cards[0]["max_model_len"] and cards[1]["permission"]

    again = sync_once(client, registry, adapter_root=ROOT)
    assert again.ok and again.loaded == again.unloaded == [] and again.unchanged == [OLD, NEW]
    assert again.lines() == [f"in sync: 2 adapter version(s) loaded in vLLM at {vllm.url}"]
    assert [kind for kind, _ in vllm.lora_calls] == ["load", "load"]  # nothing asked twice


def test_a_removed_version_is_unloaded_and_the_base_and_an_admins_adapters_stay(registry, vllm, client,
                                                                                admin_dir) -> None:
    sync_once(client, registry, adapter_root=ROOT)
    # An admin's adapters, loaded by hand: one with a name of ours' shape, neither from the registry.
    for name in ("sql-lora", "r0009-deadbeef"):
        write_lora_adapter(admin_dir / name)
        client.load(name, f"/admin/{name}")
    reg.remove_version(registry, OLD)

    report = sync_once(client, registry, adapter_root=ROOT)

    assert report.ok and report.unloaded == [OLD] and report.loaded == [] and report.unchanged == [NEW]
    assert report.left_alone == {"sql-lora": "/admin/sql-lora", "r0009-deadbeef": "/admin/r0009-deadbeef"}
    assert lora_roots(client) == {NEW: f"{ROOT}/{NEW}", "sql-lora": "/admin/sql-lora",
                                  "r0009-deadbeef": "/admin/r0009-deadbeef"}
    assert BASE in report.base_models and [c["id"] for c in client.models()][0] == BASE
    assert [body["lora_name"] for kind, body in vllm.lora_calls if kind == "unload"] == [OLD]
    assert f"unloaded {OLD} (no longer in the registry)" in report.lines()


def test_an_emptied_registry_unloads_ours_but_a_missing_one_changes_nothing(registry, vllm, client) -> None:
    sync_once(client, registry, adapter_root=ROOT)
    for version in (OLD, NEW):
        reg.remove_version(registry, version)
    assert sync_once(client, registry, adapter_root=ROOT).unloaded == [OLD, NEW]

    publish(registry, OLD)
    sync_once(client, registry, adapter_root=ROOT)
    missing = sync_once(client, registry.parent / "not-mounted", adapter_root=ROOT)
    assert not missing.ok and "does not exist; nothing was changed" in missing.problems[0]
    assert lora_roots(client) == {OLD: f"{ROOT}/{OLD}"}


def test_a_version_name_loaded_from_elsewhere_is_reported_not_replaced(registry, vllm, client, admin_dir) -> None:
    write_lora_adapter(admin_dir / OLD)
    client.load(OLD, f"/admin/{OLD}")

    report = sync_once(client, registry, adapter_root=ROOT)

    assert report.loaded == [NEW] and lora_roots(client)[OLD] == f"/admin/{OLD}"
    assert report.problems == [f"{OLD} is loaded in vLLM from /admin/{OLD}, not from the registry's {ROOT}/{OLD}; "
                               "unload it there to let this load the registry's version"]


def test_refused_adapters_are_one_line_problems_and_the_round_goes_on(registry, vllm, client) -> None:
    publish(registry, "r0003-big", created_at="2026-12-03T04:12:00+00:00", r=32)

    refused = sync_once(client, registry, adapter_root=ROOT)
    assert refused.loaded == [OLD, NEW] and len(refused.problems) == 1
    assert refused.problems[0].startswith(f"load r0003-big from {ROOT}/r0003-big: vLLM answered 400 "
                                          "(BadRequestError: LoRA rank 32 is greater than max_lora_rank 16.")

    # told vLLM's limit, the command does not even ask
    checked = sync_once(client, registry, adapter_root=ROOT, max_lora_rank=16)
    assert checked.problems == ["adapter version r0003-big has LoRA rank 32 > --max-lora-rank 16: vLLM would "
                                "refuse it; not loaded (start vLLM with --max-lora-rank 32 or train with a lower "
                                "lora_r)"]
    assert sum(body["lora_name"] == "r0003-big" for _, body in vllm.lora_calls) == 1


def test_a_wrong_adapter_root_says_where_vllm_looked(registry, vllm, client) -> None:
    report = sync_once(client, registry, adapter_root="/mnt/elsewhere")
    assert report.loaded == [] and len(report.problems) == 2
    assert report.problems[0] == (f"load {OLD}: vLLM found no adapter at /mnt/elsewhere/{OLD}; is the registry "
                                  f"mounted there in vLLM's container? (--adapter-root) [NotFoundError: Loading "
                                  f"lora {OLD} failed: No adapter found for /mnt/elsewhere/{OLD}]")


def test_vllm_errors_read_in_both_shapes(vllm, client, admin_dir) -> None:
    write_lora_adapter(admin_dir / "x")
    client.load("x", "/admin/x")
    with pytest.raises(VllmError, match=r"load x from /admin/x: vLLM answered 400 \(InvalidUserInput: The lora "
                                        r"adapter 'x' has already been loaded"):
        client.load("x", "/admin/x")
    assert client.unload("x") is True and client.unload("x") is False  # 404: not loaded (any more)

    def flat(request: httpx.Request) -> httpx.Response:  # vLLM before 0.10.1
        return httpx.Response(400, json={"object": "error", "message": "The lora adapter 'x' has already been "
                                         "loaded.", "type": "InvalidUserInput", "param": None, "code": 400})
    old = VllmClient("http://vllm.test", transport=httpx.MockTransport(flat))
    with pytest.raises(VllmError, match=r"400 \(InvalidUserInput: The lora adapter 'x' has already been loaded.\)"):
        old.load("x", "/a/x")


def test_vllm_down_is_one_clear_line_and_exit_1(registry) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    report = sync_once(VllmClient(url), registry, adapter_root=ROOT)
    assert report.problems == [f"vLLM at {url} is not reachable (ConnectError); is it running, and is --url right?"]

    outcome = CliRunner().invoke(app, ["adapters", "vllm-sync", "--url", url])
    assert outcome.exit_code == 1
    assert outcome.stderr.strip() == f"writersroom: {report.problems[0]}" and outcome.stdout == ""


def test_no_runtime_lora_updating_says_how_to_start_vllm(registry) -> None:
    with FakeVllm(base_name=BASE, runtime_lora_updating=False) as vllm:
        report = sync_once(VllmClient(vllm.url), registry, adapter_root=ROOT)
    assert report.problems == [f"vLLM at {vllm.url} has no /v1/load_lora_adapter: start it with --enable-lora and "
                               "the environment VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"]


def test_the_cli_sends_the_backend_api_key_and_prints_json(registry, admin_dir, monkeypatch) -> None:
    with FakeVllm(base_name=BASE, api_key="vllm-test-key-7", mounts={ROOT: registry}) as vllm:
        refused = sync_once(VllmClient(vllm.url), registry, adapter_root=ROOT)
        assert refused.problems == [f"vLLM at {vllm.url} refused the API key (401): set "
                                    "WRITERSROOM_BACKEND_API_KEY to vLLM's --api-key"]

        monkeypatch.setenv("WRITERSROOM_BACKEND_API_KEY", "vllm-test-key-7")
        monkeypatch.setenv("WRITERSROOM_BACKEND_URL", vllm.url)  # --url defaults to the backend_url setting
        outcome = CliRunner().invoke(app, ["adapters", "vllm-sync", "--adapter-root", ROOT, "--json",
                                           "--max-lora-rank", "16"])
        assert outcome.exit_code == 0, outcome.output
        printed = json.loads(outcome.stdout)
        assert printed["ok"] and printed["loaded"] == [OLD, NEW] and printed["base_models"] == [BASE]
        assert printed["url"] == vllm.url and printed["adapter_root"] == ROOT
        assert set(vllm.loras) == {OLD, NEW}

        text = CliRunner().invoke(app, ["adapters", "vllm-sync", "--url", vllm.url.removesuffix("/v1"),
                                        "--adapter-root", ROOT + "/"])
        assert text.exit_code == 0 and text.stdout == f"in sync: 2 adapter version(s) loaded in vLLM at {vllm.url}\n"


def test_watch_reports_changes_and_a_steady_state_or_outage_once(registry, vllm, client) -> None:
    emitted = []

    def emit(report) -> None:
        emitted.append(report)
        if len(emitted) == 1:
            reg.remove_version(registry, OLD)  # between two rounds, the registry changes

    watch(client, registry, interval_s=0.01, emit=emit, adapter_root=ROOT, rounds=4)
    assert [(r.loaded, r.unloaded) for r in emitted] == [([OLD, NEW], []), ([], [OLD]), ([], [])]

    down, said = VllmClient(f"http://127.0.0.1:{free_port()}/v1"), []
    stop = threading.Event()
    watch(down, registry, interval_s=0.01, emit=said.append, adapter_root=ROOT, rounds=3, stop=stop)
    assert len(said) == 1 and "is not reachable" in said[0].problems[0]  # the loop went on, and said it once


def test_the_sync_module_runs_without_torch() -> None:
    code = "import sys, backend.vllm_sync, bot.cli.adapters; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# ---- the bot against vLLM ------------------------------------------------------------------------

def ask(text: str) -> Invocation:
    return Invocation(platform="slack", room_id="T1:C1", user_id="U1", user_name="u1", text=text)


def test_dialogue_uses_the_promoted_version_once_vllm_lists_it(tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"  # make_core_services puts HOME at tmp_path
    with FakeVllm(base_name=BASE, mounts={ROOT: adapters}) as vllm:
        services = make_core_services(tmp_path, vllm.url)  # the real ChatClient, over loopback HTTP
        now = [0.0]
        services.clock = lambda: now[0]  # the bot asks vLLM for its models once per adapter_poll_s
        assert services.settings.adapter_dir == adapters
        publish(adapters, OLD)
        reg.promote(adapters, OLD)
        prompt = "a detective corners her former partner in a rainy alley characters: Maya, Cole"

        before = asyncio.run(dispatch(services, "dialogue", ask(prompt)))  # promoted, but vLLM lacks it
        assert not before.is_error, before
        assert before.metadata["model"] == BASE and before.metadata["adapter"] is None
        assert f"written by {BASE}." in before.sections[0].body and before.metadata["valid"]
        assert {body["model"] for body in vllm.requests} == {BASE}

        assert sync_once(VllmClient(vllm.url), adapters, adapter_root=ROOT).loaded == [OLD]
        sent = len(vllm.requests)
        now[0] += services.settings.backend.adapter_poll_s  # within the poll interval the bot sees it
        after = asyncio.run(dispatch(services, "dialogue", ask(prompt)))

    assert not after.is_error, after
    scene = after.sections[0].body
    assert after.metadata["model"] == OLD and after.metadata["adapter"] == OLD
    assert f"written by {OLD}." in scene and scene.startswith("EXT. RAINY ALLEY - DAY\n\n")
    assert after.metadata["valid"]
    assert {body["model"] for body in vllm.requests[sent:]} == {OLD}
    assert vllm.requests[-1]["continue_final_message"] is True  # vLLM continued the opened scene
    # under the scene grammar, in the field vLLM takes (the emulator refuses a malformed one)
    assert vllm.requests[-1]["structured_outputs"]["grammar"].startswith("start:")
    with session_scope(services.sessions) as session:
        generation = generations.get_generation(session, generation_id=after.generation_id)
        assert generation.model == OLD and generation.adapter == OLD
