"""The adapter registry on disk.

Adapters are real PEFT LoRA adapters (r=4 on q_proj, v_proj) of the tiny Llama, with
random non-zero lora_B so each one visibly changes the logits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry import versions as reg
from registry.versions import RegistryError
from tests.backend.conftest import BASE, publish


def base_model(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


# ---- the registry on disk --------------------------------------------------------------

def test_registry_lives_in_settings_adapter_dir(isolated_home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import load_settings

    monkeypatch.setenv("WRITERSROOM_CONFIG", str(tmp_path / "absent.toml"))  # defaults only
    assert reg.registry_dir(load_settings()) == isolated_home / "adapters"


def test_round_trip_from_a_directory_and_from_a_peft_model(registry: Path, sources, tiny_model_dir: Path) -> None:
    from peft import PeftModel

    publish(registry, "v1", sources["a"], room=None)
    peft_model = PeftModel.from_pretrained(base_model(tiny_model_dir), str(sources["b"]), adapter_name="trained")
    publish(registry, "v2", peft_model, adapter_name="trained", room="C42")

    versions = reg.list_versions(registry)
    assert [v.version for v in versions] == ["v1", "v2"]
    v2 = versions[1]
    assert sorted(p.name for p in v2.path.iterdir()) == sorted([*reg.ADAPTER_FILES, reg.MANIFEST])
    assert v2.manifest == reg.read_manifest(v2.path)
    assert (v2.manifest.base_model, v2.manifest.room, v2.manifest.example_count) == (BASE, "C42", 12)
    assert v2.manifest.training == {"r": 4, "lr": 2e-4} and v2.manifest.metrics == {"loss": 1.5}
    assert json.loads((v2.path / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert (v2.path / "adapter_model.safetensors").read_bytes() == (sources["b"] / "adapter_model.safetensors").read_bytes()
    assert not [p for p in registry.iterdir() if p.name.startswith(".tmp-")]


def test_versions_are_immutable(registry: Path, sources) -> None:
    publish(registry, "v1", sources["a"])
    with pytest.raises(RegistryError, match="'v1' already exists"):
        publish(registry, "v1", sources["b"])


def test_incomplete_directories_are_ignored(registry: Path, sources) -> None:
    publish(registry, "v1", sources["a"])
    shutil.copytree(registry / "v1", registry / ".tmp-v2-1234")  # a writer mid-way, hidden
    shutil.copytree(sources["a"], registry / "v3")  # PEFT files, no manifest yet
    shutil.copytree(registry / "v1", registry / "v4")  # a manifest naming another version
    shutil.copytree(registry / "v1", registry / "v5")
    (registry / "v5" / "adapter_model.safetensors").unlink()  # weights missing
    (registry / "notes.txt").write_text("not a version")
    assert [v.version for v in reg.list_versions(registry)] == ["v1"]
    with pytest.raises(RegistryError, match="'v3'"):
        reg.get_version(registry, "v3")


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", ".hidden", "Upper", "-x", "x" * 65,
                                  "serving.json", "v1\n", "v 1", "__base__", "/abs"])
def test_unsafe_version_names_are_refused(registry: Path, sources, name: str) -> None:
    with pytest.raises(RegistryError, match="invalid adapter version name"):
        reg.validate_version_name(name)
    with pytest.raises(RegistryError, match="invalid adapter version name"):
        publish(registry, name, sources["a"])
    assert not registry.exists() or not any(registry.iterdir())
    assert not (registry.parent / "evil").exists()


def test_source_must_be_a_lora_adapter(registry: Path, tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    with pytest.raises(RegistryError, match="'v1'.*adapter_model.safetensors"):
        publish(registry, "v1", tmp_path / "half")
    assert reg.list_versions(registry) == []


def test_promote_and_rollback_keep_a_history(registry: Path, sources) -> None:
    assert reg.serving(registry) == reg.ServingPointer()
    for version in ("v1", "v2"):
        publish(registry, version, sources["a"])
    publish(registry, "room-only", sources["b"], room="C7")

    reg.promote(registry, "v1")
    reg.promote(registry, "v2")
    pointer = reg.promote(registry, "room-only", room="C7")
    assert (pointer.default, pointer.rooms) == ("v2", {"C7": "room-only"})
    assert reg.serving(registry) == pointer and pointer.updated_at
    assert [(e["room"], e["version"], e["replaced_by"]) for e in pointer.previous] == [
        (None, None, "v1"), (None, "v1", "v2"), ("C7", None, "room-only")]
    assert (pointer.version_for("C7"), pointer.version_for("C8")) == ("room-only", "v2")

    assert reg.rollback(registry).default == "v1"  # the room's entry is left alone
    assert reg.rollback(registry, room="C7").rooms == {}
    pointer = reg.rollback(registry)
    assert (pointer.default, pointer.previous) == (None, [])  # walked back, not toggled
    with pytest.raises(RegistryError, match="nothing to roll back for the default"):
        reg.rollback(registry)


def test_promotion_refusals_name_the_version(registry: Path, sources) -> None:
    publish(registry, "room-only", sources["a"], room="C7")
    with pytest.raises(RegistryError, match="'missing' is not in the registry"):
        reg.promote(registry, "missing")
    with pytest.raises(RegistryError, match="'room-only' was trained on room 'C7'"):
        reg.promote(registry, "room-only")
    with pytest.raises(RegistryError, match="invalid adapter version name '../x'"):
        reg.promote(registry, "../x")
    reg.promote(registry, "room-only", room="C7")
    with pytest.raises(RegistryError, match="'room-only' is being served"):
        reg.remove_version(registry, "room-only")


def test_pointer_rewrite_is_atomic(registry: Path, sources, monkeypatch: pytest.MonkeyPatch) -> None:
    for version in ("v1", "v2"):
        publish(registry, version, sources["a"])
    reg.promote(registry, "v1")
    before = (registry / reg.POINTER).read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk vanished")

    monkeypatch.setattr(reg.os, "replace", crash)
    with pytest.raises(OSError):
        reg.promote(registry, "v2")
    assert (registry / reg.POINTER).read_bytes() == before  # old pointer intact
    assert [p.name for p in registry.iterdir() if p.name.endswith(".tmp")] == []


def test_rollback_to_a_deleted_version_is_refused(registry: Path, sources) -> None:
    for version in ("v1", "v2"):
        publish(registry, version, sources["a"])
    reg.promote(registry, "v1")
    reg.promote(registry, "v2")
    reg.remove_version(registry, "v1")
    with pytest.raises(RegistryError, match="to adapter version 'v1'"):
        reg.rollback(registry)
    assert reg.serving(registry).default == "v2"


def test_registry_imports_no_ml_framework() -> None:
    """The bot reads serving.json through this module, and the bot never imports torch."""
    import subprocess
    import sys

    probe = "import sys, registry.versions; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'peft', 'transformers')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
