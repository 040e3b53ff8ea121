"""deploy/k8s (base, the vLLM overlay, the CronJob component) against the code and itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.deploy.manifests import (
    CONFIGMAP_NAME,
    DOCS,
    K8S,
    K8S_BUILDS,
    REPO,
    SECRET_NAME,
    VLLM_IMAGE,
    accelerate_config,
    all_k8s_files,
    all_kustomizations,
    built_images,
    containers,
    image_name,
    image_tag,
    k8s_argv,
    k8s_builds,
    kustomize_references,
    label,
    load_yaml,
    looks_like_setting,
    option_value,
    parse_cli,
    pod_spec,
    secret_env_names,
    served_endpoints,
    service_urls,
    setting_env_names,
    strings_in,
    vllm_endpoints,
    writersroom_args,
)

BUILDS = k8s_builds()
CREDENTIALS = {"WRITERSROOM_DATABASE_URL", "WRITERSROOM_RETRIEVAL_CATALOG_URL"}  # URLs that carry a password


def rel(path) -> str:
    return str(path.relative_to(REPO))


def workloads(build: str):
    """(file, object, pod spec, container) for every container of a build."""
    for path, obj in BUILDS[build]:
        spec = pod_spec(obj)
        for container in containers(spec) if spec else ():
            yield path, obj, spec, container


def configmap_data(build: str) -> dict[str, str]:
    return {key: str(value) for _, obj in BUILDS[build] if obj["kind"] == "ConfigMap"
            for key, value in (obj.get("data") or {}).items()}


def literal_env(container: dict, build: str) -> dict[str, str]:
    env = configmap_data(build) if container.get("envFrom") else {}
    return env | {item["name"]: str(item["value"]) for item in container.get("env") or [] if "value" in item}


def endpoints(container: dict, build: str, where: str) -> dict[int, frozenset[str]]:
    if image_name(container["image"]) == VLLM_IMAGE:
        return vllm_endpoints([str(arg) for arg in container.get("args") or []])
    args = writersroom_args(k8s_argv(container))
    return served_endpoints(args, literal_env(container, build), where) if args is not None else {}


def invocation(container: dict, where: str):
    args = writersroom_args(k8s_argv(container))
    return parse_cli(args, where) if args is not None else None


def where(path, obj, container=None) -> str:
    return f"{rel(path)}: {label(obj)}" + (f" container {container['name']}" if container else "")


@pytest.fixture(params=sorted(BUILDS))
def build(request) -> str:
    return request.param


# ---------------------------------------------------------------- structure


def test_kustomizations_name_files_that_exist():
    problems = []
    for directory in all_kustomizations():
        for field, ref in kustomize_references(directory):
            if not ref.exists():
                problems.append(f"{rel(directory / 'kustomization.yaml')}: {field} entry {ref.relative_to(directory)} does not exist")
            elif ref.is_dir() and not (ref / "kustomization.yaml").is_file():
                problems.append(f"{rel(directory / 'kustomization.yaml')}: {field} entry {ref.name}/ has no kustomization.yaml")
    assert not problems, "\n".join(problems)


def test_every_manifest_belongs_to_a_kustomization():
    named = {ref.resolve() for directory in all_kustomizations() for _, ref in kustomize_references(directory)}
    orphans = [rel(path) for path in all_k8s_files() if path.resolve() not in named]
    assert not orphans, f"no kustomization names {orphans}"


def test_overlays_sit_beside_the_base_not_inside_it():
    # kustomize refuses `resources: [..]` from a directory inside that base ("cycle detected").
    problems = [f"{rel(d / 'kustomization.yaml')}: names {ref.relative_to(d)}, a directory that contains it"
                for d in all_kustomizations() for _, ref in kustomize_references(d)
                if ref.is_dir() and d.resolve().is_relative_to(ref.resolve())]
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_each_combination(tmp_path):
    overlay = tmp_path / "with-components"
    overlay.mkdir()
    up = os.path.relpath(K8S, overlay)
    components = [f"{up}/components/{c.name}" for c in sorted((K8S / "components").iterdir())]
    (overlay / "kustomization.yaml").write_text(f"resources: [{up}/base]\ncomponents: [{', '.join(components)}]\n")
    for directory in (*K8S_BUILDS, overlay):
        done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr.strip()}"


def test_no_secret_with_values_is_committed():
    secrets = [f"{rel(path)}: {label(doc)}" for path in all_k8s_files() for doc in load_yaml(path)
               if doc.get("kind") == "Secret"]
    assert not secrets, f"Secrets are created by the admin (docs/deployment.md), never committed: {secrets}"


# ---------------------------------------------------------------- references


def test_secret_references_name_the_documented_secret_and_its_documented_keys():
    documented = set(re.findall(r"--from-literal=([A-Z_]+)=", DOCS[0].read_text()))
    assert f"kubectl -n writersroom create secret generic {SECRET_NAME}" in DOCS[0].read_text(), \
        f"docs/deployment.md must show how to create the Secret {SECRET_NAME}"
    problems = []
    for path in all_k8s_files():
        for doc in load_yaml(path):
            for ref in _refs(doc, "secretKeyRef") + _refs(doc, "secretRef"):
                if ref.get("name") != SECRET_NAME:
                    problems.append(f"{rel(path)}: {label(doc)} refers to Secret {ref.get('name')!r}, not {SECRET_NAME}")
                if "key" in ref and ref["key"] not in documented:
                    problems.append(f"{rel(path)}: {label(doc)} reads key {ref['key']} of {SECRET_NAME}, which "
                                    "docs/deployment.md's `kubectl create secret` does not set")
    assert not problems, "\n".join(problems)


def test_configmap_references_resolve_in_the_build(build):
    present = {obj["metadata"]["name"] for _, obj in BUILDS[build] if obj["kind"] == "ConfigMap"}
    assert CONFIGMAP_NAME in present
    problems = [f"{where(path, obj)}: ConfigMap {ref['name']!r} is not in {build}"
                for path, obj in BUILDS[build]
                for ref in _refs(obj, "configMapRef") + _refs(obj, "configMapKeyRef") + _refs(obj, "configMap")
                if ref.get("name") not in present]
    assert not problems, "\n".join(problems)


def test_claims_have_a_persistent_volume_claim(build):
    claims = {obj["metadata"]["name"] for _, obj in BUILDS[build] if obj["kind"] == "PersistentVolumeClaim"}
    problems = [f"{where(path, obj)}: claimName {ref['claimName']!r} has no PersistentVolumeClaim in {build}"
                for path, obj in BUILDS[build] for ref in _refs(obj, "persistentVolumeClaim")
                if ref.get("claimName") not in claims]
    assert not problems, "\n".join(problems)


def test_shared_volumes_are_read_write_many():
    claims = {obj["metadata"]["name"]: obj for _, obj in BUILDS["deploy/k8s"] if obj["kind"] == "PersistentVolumeClaim"}
    for name in ("writersroom-adapters", "writersroom-index"):
        assert claims[name]["spec"]["accessModes"] == ["ReadWriteMany"], f"deploy/k8s/base/storage.yaml: {name} must be RWX"


def test_volume_mounts_name_volumes_of_their_pod(build):
    problems = []
    for path, obj, spec, container in workloads(build):
        volumes = {volume["name"] for volume in spec.get("volumes") or []}
        problems += [f"{where(path, obj, container)}: mounts volume {m['name']!r}, which the pod does not declare"
                     for m in container.get("volumeMounts") or [] if m["name"] not in volumes]
    assert not problems, "\n".join(problems)


def _refs(node, key: str) -> list[dict]:
    """Every mapping found under `key` anywhere in a manifest."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, dict):
                found.append(v)
            found += _refs(v, key)
    elif isinstance(node, list):
        for item in node:
            found += _refs(item, key)
    return found


# ---------------------------------------------------------------- settings and secrets


def test_setting_names_are_real_settings():
    valid = setting_env_names()
    problems = []
    for path in all_k8s_files():
        for doc in load_yaml(path):
            names = {item["name"] for c in _all_containers(doc) for item in c.get("env") or []}
            names |= {ref["key"] for ref in _refs(doc, "secretKeyRef") + _refs(doc, "configMapKeyRef")}
            if doc.get("kind") == "ConfigMap":
                names |= set(doc.get("data") or {})
            problems += [f"{rel(path)}: {label(doc)}: {name} is not a setting (config.settings.SECTIONS)"
                         for name in sorted(names) if looks_like_setting(name) and name not in valid]
    assert not problems, "\n".join(problems)


def _all_containers(doc: dict) -> list[dict]:
    """Containers of a workload, or of a patch to one."""
    spec = pod_spec(doc)
    return containers(spec) if spec else []


def test_secrets_and_credentials_only_come_from_the_secret():
    guarded = secret_env_names() | CREDENTIALS
    problems = []
    for path in all_k8s_files():
        for doc in load_yaml(path):
            for container in _all_containers(doc):
                problems += [f"{where(path, doc, container)}: {item['name']} must come from secretKeyRef, not a value"
                             for item in container.get("env") or [] if item["name"] in guarded and "value" in item]
            if doc.get("kind") == "ConfigMap":
                problems += [f"{rel(path)}: {label(doc)} holds {key}: secrets belong in {SECRET_NAME}"
                             for key in doc.get("data") or {} if key in guarded]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- commands, probes, services


def test_every_command_line_parses_with_the_real_cli(build):
    ran = []
    for path, obj, _, container in workloads(build):
        argv = k8s_argv(container)
        config = accelerate_config(argv)
        assert config is None or (REPO / config).is_file(), f"{where(path, obj, container)}: no {config} in the repository"
        if invocation(container, where(path, obj, container)) is not None:
            ran.append(container["name"])
    assert ran


def test_probes_ask_a_port_and_path_the_process_serves(build):
    problems = []
    for path, obj, _, container in workloads(build):
        served = endpoints(container, build, where(path, obj, container))
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = (container.get(probe) or {}).get("httpGet")
            if not get:
                continue
            port = ports.get(get["port"], get["port"])
            if get["path"] not in served.get(port, ()):
                problems.append(f"{where(path, obj, container)}: {probe} asks :{port}{get['path']}, but the process serves "
                                + (", ".join(f":{p} {sorted(x)}" for p, x in served.items()) or "nothing"))
        for name, port in ports.items():
            if port not in served:
                problems.append(f"{where(path, obj, container)}: containerPort {name}={port} is not a port it listens on")
        if obj["kind"] == "Deployment" and served:
            problems += [f"{where(path, obj, container)}: a long-running server needs a {probe}"
                         for probe in ("readinessProbe", "livenessProbe") if probe not in container]
    assert not problems, "\n".join(problems)


def test_services_route_to_a_served_container_port(build):
    pods = [(obj, container) for _, obj, _, container in workloads(build) if obj["kind"] == "Deployment"]
    problems = []
    for path, service in ((p, o) for p, o in BUILDS[build] if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        chosen = [(obj, c) for obj, c in pods
                  if selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()]
        if not chosen:
            problems.append(f"{where(path, service)}: its selector {selector} matches no Deployment")
        for port in service["spec"]["ports"]:
            for obj, container in chosen:
                by_name = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
                target = by_name.get(port["targetPort"], port["targetPort"])
                if target not in by_name.values():
                    problems.append(f"{where(path, service)}: targetPort {port['targetPort']} is not a port of {label(obj)}")
    assert not problems, "\n".join(problems)


def test_urls_in_env_and_args_point_at_a_service_port(build):
    services = {obj["metadata"]["name"]: {p["port"] for p in obj["spec"]["ports"]}
                for _, obj in BUILDS[build] if obj["kind"] == "Service"}
    problems = []
    for path, obj, _, container in workloads(build):
        texts = [str(a) for a in container.get("args") or []] + list(literal_env(container, build).values())
        for host, port in (url for text in texts for url in service_urls(text)):
            if port not in services.get(host, ()):
                problems.append(f"{where(path, obj, container)}: http://{host}:{port} is no Service port in {build}")
    assert not problems, "\n".join(problems)


def test_containers_that_run_the_model_get_a_gpu(build):
    problems, generating = [], []
    for path, obj, spec, container in workloads(build):
        inv = invocation(container, where(path, obj, container))
        runs_model = image_name(container["image"]) == VLLM_IMAGE or (
            inv is not None and inv.path in {("backend", "serve"), ("trainer",), ("train",)}
            and not inv.params.get("embeddings_only"))
        if not runs_model:
            continue
        generating.append(container["name"])
        resources = container.get("resources") or {}
        if int((resources.get("limits") or {}).get("nvidia.com/gpu", 0)) < 1:
            problems.append(f"{where(path, obj, container)}: runs the model without limits nvidia.com/gpu")
        if not any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations") or []):
            problems.append(f"{where(path, obj, container)}: tolerate the GPU nodes' nvidia.com/gpu taint")
    assert generating and not problems, "\n".join(problems)


def test_containers_run_as_non_root_with_resource_requests(build):
    problems = []
    for path, obj, spec, container in workloads(build):
        context = (spec.get("securityContext") or {}) | (container.get("securityContext") or {})
        if not context.get("runAsNonRoot") or context.get("runAsUser") in (None, 0):
            problems.append(f"{where(path, obj, container)}: must run as non-root (runAsNonRoot, runAsUser)")
        requests = (container.get("resources") or {}).get("requests") or {}
        if not {"cpu", "memory"} <= set(requests):
            problems.append(f"{where(path, obj, container)}: must request cpu and memory")
    assert not problems, "\n".join(problems)


def test_images_are_pinned(build):
    problems = [f"{where(path, obj, container)}: image {container['image']} is not pinned to a tag"
                for path, obj, _, container in workloads(build) if image_tag(container["image"]) in (None, "latest")]
    unknown = [f"{where(path, obj, container)}: image {container['image']} is neither built here nor vLLM"
               for path, obj, _, container in workloads(build)
               if image_name(container["image"]) not in set(built_images()) | {VLLM_IMAGE}]
    assert not problems + unknown, "\n".join(problems + unknown)


# ---------------------------------------------------------------- the shape of each workload


def _deployment_running(build: str, command: tuple[str, ...]):
    for path, obj, _, container in workloads(build):
        inv = invocation(container, where(path, obj, container))
        if obj["kind"] == "Deployment" and inv is not None and inv.path == command:
            return obj
    return None


def test_slack_scales_out_and_discord_and_the_trainer_stay_single():
    slack = _deployment_running("deploy/k8s", ("slack",))
    assert slack["spec"]["replicas"] >= 2, "deploy/k8s/base/slack.yaml: the HTTP bot runs at least 2 replicas"
    for command in (("discord",), ("trainer",)):
        obj = _deployment_running("deploy/k8s", command)
        assert obj["spec"]["replicas"] == 1 and obj["spec"]["strategy"]["type"] == "Recreate", \
            f"{label(obj)}: exactly one replica, strategy Recreate (never two side by side)"


def test_the_slack_service_exposes_the_events_port():
    from config.settings import load_settings

    service = next(o for _, o in BUILDS["deploy/k8s"] if o["kind"] == "Service" and o["metadata"]["name"] == "writersroom-slack")
    assert [p["port"] for p in service["spec"]["ports"]] == [load_settings().slack.port]


def test_vllm_serves_the_base_model_name_and_reads_the_registry_where_adapter_sync_says():
    from backend.serve import model_name
    from config.settings import load_settings

    settings = load_settings()
    build = "deploy/k8s/vllm"
    (path, obj, _, vllm), = [w for w in workloads(build) if image_name(w[3]["image"]) == VLLM_IMAGE]
    args = [str(a) for a in vllm["args"]]
    assert option_value(args, "--served-model-name") == model_name(settings), \
        f"{where(path, obj, vllm)}: --served-model-name must be {model_name(settings)!r}"
    assert "--enable-lora" in args and option_value(args, "--tensor-parallel-size"), \
        f"{where(path, obj, vllm)}: needs --enable-lora and --tensor-parallel-size"
    rank = int(option_value(args, "--max-lora-rank"))
    assert rank >= settings.training.lora_r
    assert {e["name"]: e.get("value") for e in vllm["env"]}.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING") == "True"
    sync = next(c for _, o, _, c in workloads(build) if (i := invocation(c, label(o))) and i.path == ("adapters", "vllm-sync"))
    params = invocation(sync, "adapter-sync").params
    assert params["max_lora_rank"] == rank, "adapter-sync's --max-lora-rank must equal vLLM's"
    registry = params["adapter_root"] or f"{configmap_data(build)['WRITERSROOM_HOME']}/adapters"
    for container in (vllm, sync):
        mount = next((m for m in container["volumeMounts"] if m["mountPath"] == registry), None)
        assert mount and mount.get("readOnly"), f"{container['name']}: mount the adapters claim read-only at {registry}"


def test_in_the_vllm_overlay_bots_generate_on_vllm_and_embed_on_the_backend():
    build = "deploy/k8s/vllm"
    problems = []
    for command in (("slack",), ("discord",)):
        obj = _deployment_running(build, command)
        env = {e["name"]: e.get("value", "") for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}
        if not env.get("WRITERSROOM_BACKEND_URL", "").startswith("http://writersroom-vllm:"):
            problems.append(f"{label(obj)}: WRITERSROOM_BACKEND_URL must point at the vLLM Service in {build}")
        if not env.get("WRITERSROOM_RETRIEVAL_EMBEDDER_URL", "").startswith("http://writersroom-backend:"):
            problems.append(f"{label(obj)}: WRITERSROOM_RETRIEVAL_EMBEDDER_URL must stay on the backend")
    assert not problems, "\n".join(problems)


def test_strings_are_plain_yaml_without_templating():
    leftovers = [f"{rel(path)}: {text!r}" for path in all_k8s_files() for doc in load_yaml(path)
                 for text in strings_in(doc) if "${" in text or "{{" in text]
    assert not leftovers, f"kustomize substitutes nothing: {leftovers}"
