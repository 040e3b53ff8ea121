"""The two images: what they copy exists, what they pull is pinned, the bot image has no torch."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.deploy.manifests import (
    COMPOSE_FILES,
    DEPLOY,
    DOCKERFILES,
    REPO,
    base_images,
    compose_services,
    copy_sources,
    dockerfile,
    dockerfile_args,
    dockerignored,
    env_names,
    exec_form,
    image_tag,
    looks_like_setting,
    parse_cli,
    setting_env_names,
)

BOT = DEPLOY / "docker" / "bot.Dockerfile"
BACKEND = DEPLOY / "docker" / "backend.Dockerfile"
ML_ONLY = ("torch", "transformers", "sentence-transformers", "peft", "accelerate", "gguf")


def rel(path) -> str:
    return str(path.relative_to(REPO))


def test_both_images_exist():
    assert {BOT, BACKEND} <= set(DOCKERFILES)


def test_every_compose_build_names_an_existing_dockerfile():
    problems = []
    for compose in COMPOSE_FILES:
        for name, service in compose_services(compose).items():
            build = service.get("build") or {}
            if "dockerfile" in build:
                path = compose.parent / build.get("context", ".") / build["dockerfile"]
                if not path.is_file():
                    problems.append(f"{rel(compose)}: service {name}: build.dockerfile {build['dockerfile']} does not exist")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_are_in_the_build_context(path):
    problems = []
    for line, source in copy_sources(path):
        if not (REPO / source).exists():
            problems.append(f"{rel(path)}:{line}: COPY {source}: no such file or directory in the repository")
        elif dockerignored(source):
            problems.append(f"{rel(path)}:{line}: COPY {source}: .dockerignore leaves it out of the build context")
    assert copy_sources(path) and not problems, "\n".join(problems)


def test_the_build_context_leaves_out_secrets_and_local_state():
    for path in (".env", "deploy/.env", ".venv", ".git", "tests"):
        assert dockerignored(path), f".dockerignore: {path} would be sent to the Docker daemon"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(path):
    images = base_images(path) + [value for name, value in dockerfile_args(path).items() if name.endswith("IMAGE")]
    problems = [f"{rel(path)}: base image {image} is not pinned to a tag" for image in images
                if image_tag(image) in (None, "latest")]
    assert images and not problems, "\n".join(problems)


def test_the_cpu_variant_build_args_are_pinned():
    problems = []
    for compose in COMPOSE_FILES:
        for name, service in compose_services(compose).items():
            for arg, value in ((service.get("build") or {}).get("args") or {}).items():
                if arg.endswith("IMAGE") and image_tag(value) in (None, "latest"):
                    problems.append(f"{rel(compose)}: service {name}: build arg {arg}={value} is not pinned")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_the_cli_as_a_non_root_user(path):
    assert exec_form(path, "ENTRYPOINT") == ["writersroom"], f"{rel(path)}: ENTRYPOINT must be [\"writersroom\"]"
    parse_cli(exec_form(path, "CMD"), f"{rel(path)} CMD")
    users = [ins.value for ins in dockerfile(path) if ins.keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{rel(path)}: the last USER must not be root"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_setting_names_in_env_are_real_settings(path):
    unknown = sorted(name for name in env_names(path) if looks_like_setting(name) and name not in setting_env_names())
    assert not unknown, f"{rel(path)}: ENV sets {unknown}, which no section of config.settings reads"


def test_the_bot_image_installs_neither_torch_nor_the_ml_extra():
    runs = " ".join(ins.value for ins in dockerfile(BOT) if ins.keyword == "RUN")
    assert "torch" not in runs, f"{rel(BOT)}: a RUN instruction installs torch"
    assert not re.search(r"\[[^\]]*\bml\b", runs), f"{rel(BOT)}: a RUN instruction installs the ml extra"
    assert "optional-dependencies" not in runs, f"{rel(BOT)}: a RUN instruction installs an optional extra"
    # What it does install is the base list: that must not pull torch in either.
    base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    heavy = [req for req in base if re.split(r"[<>=!~\[; ]", req, 1)[0].lower() in ML_ONLY]
    assert not heavy, f"pyproject.toml: base dependencies {heavy} would put torch in the slim bot image"


def test_the_backend_image_pins_torch_and_bakes_the_default_models():
    args = dockerfile_args(BACKEND)
    assert "BASE_IMAGE" in args and "TORCH_INDEX_URL" in args, f"{rel(BACKEND)}: needs ARG BASE_IMAGE and ARG TORCH_INDEX_URL"
    runs = [ins.value for ins in dockerfile(BACKEND) if ins.keyword == "RUN"]
    pinned = re.search(r"^torch==(\S+)$", (REPO / "deploy" / "constraints.txt").read_text(), re.M).group(1)
    assert any(f"torch=={pinned}" in run and "TORCH_INDEX_URL" in run for run in runs), \
        f"{rel(BACKEND)}: must install torch=={pinned} (deploy/constraints.txt) from $TORCH_INDEX_URL"
    fetch = next((run for run in runs if "writersroom models fetch" in run), "")
    assert fetch, f"{rel(BACKEND)}: must run `writersroom models fetch`"
    assert "a+rX" in fetch, f"{rel(BACKEND)}: the fetched models (private temporary dirs, root) must be made readable"
    assert "WRITERSROOM_MODEL_CACHE_DIR" in env_names(BACKEND), \
        f"{rel(BACKEND)}: set WRITERSROOM_MODEL_CACHE_DIR so the fetched models are found at run time"


# The slim image's processes, run here with every package it lacks made unimportable.
_WITHOUT_EXTRAS = """
import importlib.abc, os, sys
MISSING = set(sys.argv[1].split(","))

class NotInTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MISSING:
            raise ImportError(f"{name} is not installed in the bot image")

sys.meta_path.insert(0, NotInTheImage())
import bot.slack.run, bot.discord.client, backend.vllm_sync
from bot.cli.runtime import make_embedder
from config.settings import load_settings
os.environ["WRITERSROOM_RETRIEVAL_EMBEDDER_URL"] = "http://backend:8088/v1"
print(type(make_embedder(load_settings())).__name__)
from bot.cli.main import main
sys.argv = ["writersroom", "db", "upgrade"]
main()
"""


def test_the_bot_image_commands_run_without_torch_or_the_extras(isolated_home):
    import subprocess
    import sys

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]["ml"] + project["optional-dependencies"]["serve"]
    missing = {"torch"} | {re.split(r"[<>=!~\[; ]", req, 1)[0].lower().replace("-", "_") for req in extras}
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS, ",".join(sorted(missing))], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{rel(BOT)}: a bot-image command needs a package the image lacks:\n{done.stderr[-2000:]}"
    assert "RemoteEmbedder" in done.stdout and "store at revision" in done.stdout, done.stdout
