"""Read the deployment files the way their tools would, and what the code says they must match.

Everything here parses: no Docker, cluster or systemd is needed. The truth they are held to
comes from the code itself: setting names from `config.settings.SECTIONS`, command lines from
the real Typer app, ports from the settings' defaults, backend paths from the FastAPI app.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import click
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_FILES = (COMPOSE, DEPLOY / "compose.cpu.yaml")
DOCKERFILES = tuple(sorted((DEPLOY / "docker").glob("*.Dockerfile")))
K8S = DEPLOY / "k8s"
K8S_BUILDS = (K8S, K8S / "vllm")  # what `kubectl apply -k` is documented on
SYSTEMD_UNITS = tuple(sorted((DEPLOY / "systemd").glob("*.service")))
DOCS = (REPO / "docs" / "deployment.md", REPO / "docs" / "runbook.md")

SECRET_NAME = "writersroom-secrets"  # the one Secret the admin creates (docs/deployment.md)
CONFIGMAP_NAME = "writersroom-config"
VLLM_IMAGE = "vllm/vllm-openai"
VLLM_PATHS = frozenset({"/health"})
VLLM_DEFAULT_PORT = 8000
SETTING_PREFIXES = ("WRITERSROOM_", "SLACK_", "DISCORD_")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_LOCAL_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s)]*)")
_SERVICE_URL = re.compile(r"http://([a-z][a-z0-9-]*):(\d+)")


# ---------------------------------------------------------------- YAML


class _ComposeLoader(yaml.SafeLoader):
    """Compose override files use `!reset` (drop a key from the file below)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def load_yaml(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=_ComposeLoader) if doc is not None]


def strings_in(node: Any) -> Iterator[str]:
    """Every string value (and mapping key) anywhere in a parsed document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def interpolated_names(node: Any) -> set[str]:
    """Names in `${NAME}`, `${NAME:-default}`, `${NAME:?message}`."""
    return {name for text in strings_in(node) for name in _INTERPOLATION.findall(text)}


# ---------------------------------------------------------------- settings and the CLI


@lru_cache(maxsize=1)
def setting_env_names() -> frozenset[str]:
    from config.settings import SECTIONS

    return frozenset((cls.model_config["env_prefix"] + name).upper()
                     for cls in SECTIONS.values() for name in cls.model_fields)


@lru_cache(maxsize=1)
def secret_env_names() -> frozenset[str]:
    from config.settings import SECTIONS

    return frozenset((cls.model_config["env_prefix"] + name).upper()
                     for cls in SECTIONS.values() for name in cls.secret_fields)


def looks_like_setting(name: str) -> bool:
    return name.startswith(SETTING_PREFIXES)


@dataclass(frozen=True)
class Invocation:
    path: tuple[str, ...]  # e.g. ("backend", "serve")
    params: dict[str, Any]  # what click parsed, by parameter name


@lru_cache(maxsize=1)
def _root_command():
    import typer

    from bot.cli.main import app

    return typer.main.get_command(app)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Typer may carry its own copy of click; its errors are not click's."""
    try:
        from typer._click.exceptions import ClickException as vendored
    except ImportError:
        return (click.ClickException,)
    return (vendored, click.ClickException)


def parse_cli(args: list[str], where: str) -> Invocation:
    """Parse `writersroom ARGS` with the real CLI (nothing runs); AssertionError naming `where` if it fails."""
    command, name, parent, rest = _root_command(), "writersroom", None, list(args)
    path: list[str] = []
    params: dict[str, Any] = {}
    try:
        while True:
            ctx = command.make_context(name, rest, parent=parent, resilient_parsing=False)
            params.update(ctx.params)
            if not hasattr(command, "resolve_command"):  # a command, not a group
                return Invocation(tuple(path), params)
            rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
            if not rest:
                raise AssertionError(f"{where}: `writersroom {shlex.join(args)}` names a group, not a command")
            name, command, rest = command.resolve_command(ctx, rest)
            path.append(name)
            parent = ctx
    except _usage_errors() as exc:
        raise AssertionError(f"{where}: `writersroom {shlex.join(args)}` is not a valid command line: "
                             f"{exc.format_message()}") from None


def writersroom_args(argv: list[str]) -> list[str] | None:
    """The writersroom arguments of a process's argv, or None when it runs something else.

    Knows `writersroom ...`, `/path/bin/writersroom ...` and `accelerate launch ... -m bot.cli.main ...`."""
    if not argv:
        return None
    if argv[0] == "writersroom" or argv[0].endswith("/bin/writersroom"):
        return argv[1:]
    if argv[0] == "accelerate" and "-m" in argv:
        at = argv.index("-m")
        if argv[at + 1: at + 2] == ["bot.cli.main"]:
            return argv[at + 2:]
    return None


def accelerate_config(argv: list[str]) -> str | None:
    if argv and argv[0] == "accelerate" and "--config_file" in argv:
        return argv[argv.index("--config_file") + 1]
    return None


# ---------------------------------------------------------------- what each process serves


def ops_paths() -> frozenset[str]:
    """What the bots' and the trainer's ops server answers."""
    from observability.ops_server import PATHS

    return frozenset(PATHS)


@lru_cache(maxsize=1)
def backend_paths() -> frozenset[str]:
    """GET/POST paths of the backend's FastAPI app, built over a stand-in generator."""
    from types import SimpleNamespace

    from backend.app import create_app

    app = create_app(SimpleNamespace(name="stand-in", adapters=None))
    try:
        return frozenset(route.path for route in app.routes)
    finally:
        app.state.scheduler.close()


@lru_cache(maxsize=1)
def embeddings_only_paths() -> frozenset[str]:
    """Paths of `backend serve --embeddings-only`."""
    from types import SimpleNamespace

    from backend.embeddings import create_embeddings_app

    return frozenset(route.path for route in create_embeddings_app(SimpleNamespace(model_id="stand-in")).routes)


def served_endpoints(args: list[str], env: dict[str, str], where: str) -> dict[int, frozenset[str]]:
    """Port -> paths served by `writersroom ARGS` under this environment (empty: no HTTP)."""
    from config.settings import load_settings

    defaults = load_settings()
    invocation = parse_cli(args, where)

    def port(env_name: str, default: int, option: str | None = None) -> int:
        if option and invocation.params.get(option) is not None:
            return int(invocation.params[option])
        return int(env.get(env_name, default))

    command = invocation.path
    if command == ("backend", "serve"):
        paths = embeddings_only_paths() if invocation.params.get("embeddings_only") else backend_paths()
        return {port("WRITERSROOM_BACKEND_PORT", defaults.backend.port, "port"): paths}
    ops_bot = port("WRITERSROOM_OPS_BOT_PORT", defaults.ops.bot_port)
    if command == ("slack",):
        return {ops_bot: ops_paths(), port("SLACK_PORT", defaults.slack.port, "port"): frozenset({"/slack/events"})}
    if command == ("discord",):
        return {ops_bot: ops_paths()}
    if command == ("trainer",):
        return {port("WRITERSROOM_OPS_TRAINER_PORT", defaults.ops.trainer_port): ops_paths()}
    return {}


def vllm_endpoints(args: list[str]) -> dict[int, frozenset[str]]:
    listen = int(option_value(args, "--port") or VLLM_DEFAULT_PORT)
    return {listen: VLLM_PATHS}


def option_value(args: list[str], option: str) -> str | None:
    for at, arg in enumerate(args):
        if arg == option and at + 1 < len(args):
            return args[at + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def local_urls(text: str) -> list[tuple[int, str]]:
    """(port, path) of every http://127.0.0.1:PORT/PATH in a health check."""
    return [(int(port), path) for port, path in _LOCAL_URL.findall(text)]


def service_urls(text: str) -> list[tuple[str, int]]:
    return [(host, int(port)) for host, port in _SERVICE_URL.findall(text)
            if host not in ("localhost",)]


# ---------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    value: str


def dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not buffer and not stripped):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        keyword, _, rest = (buffer + stripped).partition(" ")
        out.append(Instruction(start, keyword.upper(), rest.strip()))
        buffer = ""
    return out


def dockerfile_args(path: Path) -> dict[str, str]:
    args = {}
    for ins in dockerfile(path):
        if ins.keyword == "ARG" and "=" in ins.value:
            name, value = ins.value.split("=", 1)
            args[name.strip()] = value.strip()
    return args


def base_images(path: Path) -> list[str]:
    """FROM images with ARG defaults substituted."""
    args = dockerfile_args(path)
    images = []
    for ins in dockerfile(path):
        if ins.keyword == "FROM":
            image = ins.value.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image))
    return images


def copy_sources(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every COPY/ADD from the build context (not from another stage)."""
    sources = []
    for ins in dockerfile(path):
        if ins.keyword not in ("COPY", "ADD"):
            continue
        parts = shlex.split(ins.value)
        if any(part.startswith("--from") for part in parts):
            continue
        parts = [part for part in parts if not part.startswith("--")]
        sources += [(ins.line, source) for source in parts[:-1]]
    return sources


def exec_form(path: Path, keyword: str) -> list[str]:
    found = [ins.value for ins in dockerfile(path) if ins.keyword == keyword]
    return json.loads(found[-1]) if found else []


def env_names(path: Path) -> set[str]:
    names = set()
    for ins in dockerfile(path):
        if ins.keyword == "ENV":
            names |= {token.split("=", 1)[0] for token in shlex.split(ins.value) if "=" in token}
    return names


def dockerignored(relative: str) -> bool:
    """Whether the build context (the repository root) leaves this path out, per .dockerignore."""
    ignore = REPO / ".dockerignore"
    if not ignore.is_file():
        return False
    excluded = False
    relative = relative.removeprefix("./").rstrip("/")
    candidates = [relative] + [str(parent) for parent in Path(relative).parents if str(parent) != "."]
    for raw in ignore.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negate
    return excluded


# ---------------------------------------------------------------- docker compose


def compose_services(path: Path = COMPOSE) -> dict[str, dict]:
    return load_yaml(path)[0].get("services", {})


def built_images() -> dict[str, Path]:
    """Image name (without tag) -> Dockerfile, for every image compose builds."""
    images = {}
    for service in compose_services().values():
        build = service.get("build")
        if build:
            images[image_name(service["image"])] = (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve()
    return images


def with_defaults(text: str) -> str:
    """A compose string as it reads when no variable is set: ${X:-d} -> d."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?[^}]*\}", lambda m: m.group(1) or "", text)


def image_name(image: str) -> str:
    image = with_defaults(image)
    head, _, last = image.rpartition("/")
    return (head + "/" if head else "") + last.split(":", 1)[0]


def image_tag(image: str) -> str | None:
    last = with_defaults(image).rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def compose_argv(service: dict) -> list[str]:
    """entrypoint + command, the entrypoint from the service or its Dockerfile."""
    entrypoint = service.get("entrypoint")
    if entrypoint is None and image_name(service.get("image", "")) in built_images():
        entrypoint = exec_form(built_images()[image_name(service["image"])], "ENTRYPOINT")
    as_list = lambda value: shlex.split(value) if isinstance(value, str) else list(value or [])  # noqa: E731
    return [str(part) for part in as_list(entrypoint) + as_list(service.get("command"))]


def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def compose_volume_sources(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume; named volumes have a source without / or ."""
    out = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
        else:
            out.append((volume.get("source", ""), volume["target"]))
    return out


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith(("/", ".", "~", "$"))


# ---------------------------------------------------------------- Kubernetes


def kustomization(directory: Path) -> dict:
    return load_yaml(directory / "kustomization.yaml")[0]


def kustomize_references(directory: Path) -> list[tuple[str, Path]]:
    """(field, path) of every resource, component and patch file a kustomization names."""
    doc = kustomization(directory)
    refs = [("resources", directory / item) for item in doc.get("resources", [])]
    refs += [("components", directory / item) for item in doc.get("components", [])]
    refs += [("patches", directory / patch["path"]) for patch in doc.get("patches", []) if "path" in patch]
    return refs


def kustomize_build(directory: Path, before: list[tuple[Path, dict]] | None = None) -> list[tuple[Path, dict]]:
    """(file, object) after resources, components and patches, as `kubectl kustomize` would
    (patches: strategic merge by kind and name, lists of named items merged by name, null deletes).
    `before`: what a component's patches apply to."""
    doc = kustomization(directory)
    objects = list(before or [])
    for item in doc.get("resources", []):
        ref = directory / item
        objects += kustomize_build(ref) if ref.is_dir() else [(ref, obj) for obj in load_yaml(ref)]
    for item in doc.get("components", []):
        objects = kustomize_build(directory / item, objects)
    for patch in doc.get("patches", []):
        source = directory / patch.get("path", "kustomization.yaml")
        for change in (load_yaml(source) if "path" in patch else list(yaml.safe_load_all(patch["patch"]))):
            objects = _apply_patch(objects, change, source)
    return objects


def _apply_patch(objects: list[tuple[Path, dict]], change: dict, source: Path) -> list[tuple[Path, dict]]:
    target = (change.get("kind"), change.get("metadata", {}).get("name"))
    hits = [i for i, (_, obj) in enumerate(objects) if (obj.get("kind"), obj["metadata"].get("name")) == target]
    assert hits, f"{source.relative_to(REPO)}: the patch of {target[0]}/{target[1]} matches no object"
    if change.get("$patch") == "delete":
        return [item for i, item in enumerate(objects) if i not in hits]
    out = list(objects)
    for i in hits:
        out[i] = (out[i][0], _merge(copy.deepcopy(out[i][1]), change))
    return out


def _merge(base: Any, change: Any) -> Any:
    if isinstance(base, dict) and isinstance(change, dict):
        for key, value in change.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return base
    named = lambda items: isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items)  # noqa: E731
    if named(base) and named(change) and change:
        by_name = {item["name"]: item for item in base}
        for item in change:
            if item["name"] in by_name:
                _merge(by_name[item["name"]], item)
            else:
                base.append(copy.deepcopy(item))
        return base
    return copy.deepcopy(change)


def k8s_builds() -> dict[str, list[tuple[Path, dict]]]:
    """Every deployable combination: the documented builds, and each component on the base."""
    builds = {str(path.relative_to(REPO)): kustomize_build(path) for path in K8S_BUILDS}
    for component in sorted((K8S / "components").iterdir()):
        builds[f"deploy/k8s/base + {component.relative_to(K8S)}"] = kustomize_build(component, kustomize_build(K8S / "base"))
    return builds


def all_kustomizations() -> list[Path]:
    return sorted(path.parent for path in K8S.rglob("kustomization.yaml"))


def all_k8s_files() -> list[Path]:
    return sorted(path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml")


def pod_spec(obj: dict) -> dict | None:
    kind = obj.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def k8s_argv(container: dict) -> list[str]:
    command = container.get("command")
    if command is None and image_name(container["image"]) in built_images():
        command = exec_form(built_images()[image_name(container["image"])], "ENTRYPOINT")
    return [str(part) for part in list(command or []) + list(container.get("args") or [])]


def label(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# ---------------------------------------------------------------- systemd


def unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Section -> (key, value) in order; keys repeat (several ExecStart=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def unit_values(path: Path, section: str, key: str) -> list[str]:
    return [value for k, value in unit(path).get(section, []) if k == key]


# ---------------------------------------------------------------- docs


def shell_commands(path: Path) -> list[tuple[int, list[str]]]:
    """(line, argv) of each command in the fenced shell blocks of a Markdown file."""
    commands = []
    in_block, language, pending, start = False, "", "", 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.lstrip().startswith("```"):
            in_block, language = (not in_block), raw.strip().strip("`").strip()
            continue
        if not in_block or language not in ("bash", "sh", "shell", "console"):
            continue
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        tokens = shlex.split(line, comments=True)
        segment: list[str] = []
        for token in tokens + [";"]:
            if token in ("&&", "||", ";", "|"):
                if segment:
                    commands.append((start, segment))
                segment = []
            else:
                segment.append(token)
    return commands


def docs_invocation(argv: list[str]) -> list[str] | None:
    """The writersroom-or-accelerate part of a documented command, where it runs one.

    `VAR=x writersroom ...`, `sudo -u writersroom /opt/.../writersroom ...`,
    `docker compose exec SERVICE writersroom ...`, `kubectl ... -- writersroom ...`."""
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):
        argv = argv[1:]
    if argv[:1] == ["sudo"]:
        argv = argv[3:] if argv[1:2] == ["-u"] else argv[1:]
    if argv[:2] == ["docker", "compose"] and "exec" in argv:
        after = argv[argv.index("exec") + 1:]
        argv = after[after.index("writersroom"):] if "writersroom" in after else []
    if writersroom_args(argv) is None:
        return None
    return argv
