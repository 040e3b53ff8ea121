"""deploy/compose.yaml (and the CPU override) against the code: every name, command, port and path."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    COMPOSE,
    COMPOSE_FILES,
    DOCS,
    REPO,
    VLLM_IMAGE,
    built_images,
    compose_argv,
    compose_env,
    compose_services,
    compose_volume_sources,
    image_name,
    image_tag,
    interpolated_names,
    is_named_volume,
    load_yaml,
    local_urls,
    looks_like_setting,
    option_value,
    parse_cli,
    secret_env_names,
    served_endpoints,
    service_urls,
    setting_env_names,
    vllm_endpoints,
    writersroom_args,
)

SERVICES = compose_services()
FILE = str(COMPOSE.relative_to(REPO))
NOT_SETTINGS_BUT_SECRET = {"POSTGRES_PASSWORD", "PGPASSWORD", "HF_TOKEN", "VLLM_API_KEY"}


def is_vllm(service: dict) -> bool:
    return image_name(service.get("image", "")) == VLLM_IMAGE


def endpoints(name: str) -> dict[int, frozenset[str]]:
    """Port -> paths the service's process serves."""
    service = SERVICES[name]
    if is_vllm(service):
        return vllm_endpoints([str(arg) for arg in service.get("command", [])])
    args = writersroom_args(compose_argv(service))
    return served_endpoints(args, compose_env(service), f"{FILE}: service {name}") if args is not None else {}


def invocation(name: str):
    args = writersroom_args(compose_argv(SERVICES[name]))
    return parse_cli(args, f"{FILE}: service {name}") if args is not None else None


def services_running(*paths: tuple[str, ...]) -> list[str]:
    return [name for name in SERVICES if (inv := invocation(name)) is not None and inv.path in paths]


def test_the_stack_has_its_services():
    expected = {"postgres", "migrate", "index-init", "backend", "slack", "discord", "trainer", "vllm", "adapter-sync"}
    assert expected <= set(SERVICES), f"{FILE}: missing services {sorted(expected - set(SERVICES))}"


def test_images_not_built_here_are_pinned():
    problems = []
    for compose in COMPOSE_FILES:
        for name, service in compose_services(compose).items():
            image = service.get("image")
            if image and image_name(image) not in built_images() and image_tag(image) in (None, "latest"):
                problems.append(f"{compose.relative_to(REPO)}: service {name}: image {image} is not pinned to a tag")
    assert not problems, "\n".join(problems)


def test_every_command_line_parses_with_the_real_cli():
    ran = [name for name in SERVICES if invocation(name) is not None]  # parse_cli raises with the service named
    assert {"migrate", "index-init", "backend", "slack", "discord", "trainer", "adapter-sync"} <= set(ran)


def test_named_volumes_are_declared():
    declared = set(load_yaml(COMPOSE)[0].get("volumes") or {})
    problems = [f"{FILE}: service {name}: volume {source} is not declared under top-level volumes:"
                for name, service in SERVICES.items()
                for source, _ in compose_volume_sources(service)
                if is_named_volume(source) and source not in declared]
    assert not problems, "\n".join(problems)


def test_setting_names_are_real_settings():
    valid = setting_env_names()
    problems = []
    for compose in COMPOSE_FILES:
        document = load_yaml(compose)[0]
        names = interpolated_names(document)
        for service in (document.get("services") or {}).values():
            names |= set(compose_env(service))
        problems += [f"{compose.relative_to(REPO)}: {name} is not a setting (config.settings.SECTIONS)"
                     for name in sorted(names) if looks_like_setting(name) and name not in valid]
    assert not problems, "\n".join(problems)


def test_secrets_come_from_the_environment_never_from_the_file():
    problems = []
    for name, service in SERVICES.items():
        for key, value in compose_env(service).items():
            if key in secret_env_names() | NOT_SETTINGS_BUT_SECRET and \
                    not re.fullmatch(r"\$\{\w+(?::-|:\?[^}]*)?\}", value):
                problems.append(f"{FILE}: service {name}: {key} must be ${{NAME:-}} or ${{NAME:?...}}, not a value")
            if key == "WRITERSROOM_DATABASE_URL" and re.search(r"://[^/@]*:[^/@]*@", value):
                problems.append(f"{FILE}: service {name}: the database URL carries a password; use PGPASSWORD")
    assert not problems, "\n".join(problems)


def test_health_checks_probe_a_port_and_path_the_process_serves():
    problems = []
    for name, service in SERVICES.items():
        served = endpoints(name)
        test = " ".join(str(part) for part in (service.get("healthcheck") or {}).get("test", []))
        if served and not test:
            problems.append(f"{FILE}: service {name} serves {sorted(served)} but has no healthcheck")
        for port, path in local_urls(test):
            if path not in served.get(port, ()):
                problems.append(f"{FILE}: service {name}: healthcheck asks :{port}{path}, but the process serves "
                                + (", ".join(f":{p} {sorted(paths)}" for p, paths in served.items()) or "nothing"))
    assert not problems, "\n".join(problems)


def test_urls_between_services_reach_a_served_port():
    problems = []
    for name, service in SERVICES.items():
        texts = list(compose_env(service).values()) + [str(part) for part in service.get("command") or []]
        for host, port in (url for text in texts for url in service_urls(text)):
            if host not in SERVICES:
                problems.append(f"{FILE}: service {name}: http://{host}:{port} names no service")
            elif port not in endpoints(host):
                problems.append(f"{FILE}: service {name}: http://{host}:{port}: {host} serves {sorted(endpoints(host))}")
    assert not problems, "\n".join(problems)


def test_services_that_run_the_model_reserve_an_nvidia_gpu():
    generating = [name for name in services_running(("backend", "serve"), ("trainer",), ("train",))
                  if not invocation(name).params.get("embeddings_only")]
    generating += [name for name, service in SERVICES.items() if is_vllm(service)]
    problems = []
    for name in generating:
        devices = (((SERVICES[name].get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
        if not any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices):
            problems.append(f"{FILE}: service {name} runs the model but reserves no nvidia GPU")
    assert {"backend", "trainer", "vllm"} <= set(generating) and not problems, "\n".join(problems)


def test_the_cpu_override_rebuilds_every_backend_image_service_without_gpus():
    override = compose_services(COMPOSE_FILES[1])
    backend_image = SERVICES["backend"]["image"]
    problems = []
    for name, service in SERVICES.items():
        if service.get("image") != backend_image:
            continue
        cpu = override.get(name)
        if cpu is None:
            problems.append(f"{COMPOSE_FILES[1].name}: service {name} uses the backend image but is not switched to the CPU one")
            continue
        args = (cpu.get("build") or {}).get("args") or {}
        if not args.get("BASE_IMAGE", "").startswith("python:3.11") or not args.get("TORCH_INDEX_URL", "").endswith("/cpu"):
            problems.append(f"{COMPOSE_FILES[1].name}: service {name} must build on python:3.11 with the CPU torch index")
        if cpu.get("image") == backend_image:
            problems.append(f"{COMPOSE_FILES[1].name}: service {name} must tag the CPU image differently")
        if "deploy" in service and "deploy" not in cpu:
            problems.append(f"{COMPOSE_FILES[1].name}: service {name} keeps its GPU reservation (`deploy: !reset {{}}`)")
    assert not problems, "\n".join(problems)


def test_vllm_serves_the_base_model_under_the_name_the_bots_and_adapters_use():
    from backend.serve import model_name
    from config.settings import load_settings

    settings = load_settings()
    command = [str(part) for part in SERVICES["vllm"]["command"]]
    assert option_value(command, "--served-model-name") == model_name(settings), \
        f"{FILE}: vllm --served-model-name must be {model_name(settings)!r}, the base model's name in writersroom"
    assert "--enable-lora" in command, f"{FILE}: vllm needs --enable-lora"
    rank = int(option_value(command, "--max-lora-rank"))
    assert rank >= settings.training.lora_r, f"{FILE}: vllm --max-lora-rank {rank} < training.lora_r {settings.training.lora_r}"
    sync = invocation("adapter-sync")
    assert sync.path == ("adapters", "vllm-sync") and sync.params.get("max_lora_rank") == rank, \
        f"{FILE}: adapter-sync must run `adapters vllm-sync --max-lora-rank {rank}` (vLLM's)"
    assert str(compose_env(SERVICES["vllm"]).get("VLLM_ALLOW_RUNTIME_LORA_UPDATING")).lower() == "true"
    assert {"vllm"} == set(SERVICES["vllm"].get("profiles", [])) == set(SERVICES["adapter-sync"].get("profiles", []))


def test_vllm_sees_the_registry_at_the_path_adapter_sync_names():
    home = compose_env(SERVICES["adapter-sync"])["WRITERSROOM_HOME"]
    registry = f"{home}/adapters"  # config.settings.Settings.adapter_dir
    mounts = {name: {target: source for source, target in compose_volume_sources(SERVICES[name])}
              for name in ("vllm", "adapter-sync", "backend", "trainer")}
    root = invocation("adapter-sync").params.get("adapter_root") or registry
    problems = [f"{FILE}: service {name} must mount the adapters volume at {root}"
                for name, by_target in mounts.items() if by_target.get(root) != "adapters"]
    vllm_volume = next(v for v in SERVICES["vllm"]["volumes"] if str(v).startswith("adapters:"))
    assert str(vllm_volume).endswith(":ro"), f"{FILE}: vllm must mount the registry read-only"
    assert not problems, "\n".join(problems)


def test_bots_default_to_the_backend_and_the_docs_say_how_to_point_them_at_vllm():
    problems = []
    for name in services_running(("slack",), ("discord",)):
        env = compose_env(SERVICES[name])
        if env.get("WRITERSROOM_BACKEND_URL") != "${WRITERSROOM_BACKEND_URL:-http://backend:8088/v1}":
            problems.append(f"{FILE}: service {name}: WRITERSROOM_BACKEND_URL must default to the backend, overridable")
        if not env.get("WRITERSROOM_RETRIEVAL_EMBEDDER_URL", "").startswith("http://backend:"):
            problems.append(f"{FILE}: service {name}: embeddings come from the backend (WRITERSROOM_RETRIEVAL_EMBEDDER_URL)")
    assert not problems, "\n".join(problems)
    vllm_port = next(iter(endpoints("vllm")))
    deployment = DOCS[0].read_text()
    assert f"WRITERSROOM_BACKEND_URL=http://vllm:{vllm_port}/v1 docker compose --profile vllm" in deployment, \
        f"docs/deployment.md must show `WRITERSROOM_BACKEND_URL=http://vllm:{vllm_port}/v1 docker compose --profile vllm ...`"


@pytest.mark.parametrize("bot", ["slack", "discord"])
def test_each_bot_is_its_own_profile(bot):
    assert SERVICES[bot].get("profiles") == [bot], f"{FILE}: service {bot} must be under profile {bot!r} only"
