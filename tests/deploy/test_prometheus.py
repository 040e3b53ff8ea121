"""deploy/prometheus/ and the scrape annotations against the code: every series an alert reads is
one a process exports, and every scrape target is a port that serves /metrics."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    COMPOSE,
    DEPLOY,
    REPO,
    compose_argv,
    compose_env,
    compose_services,
    compose_volume_sources,
    k8s_builds,
    load_yaml,
    pod_spec,
    served_endpoints,
    writersroom_args,
)

PROMETHEUS = DEPLOY / "prometheus"
SERIES = re.compile(r"\bwritersroom_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",)}


def exported_series() -> set[str]:
    """Every series name the bots, the trainer and the backend (embeddings included) can export."""
    from prometheus_client import CollectorRegistry

    from backend.app import _Metrics
    from backend.embeddings import _Metrics as EmbeddingMetrics
    from observability.metrics import REGISTRY

    embeddings = CollectorRegistry()
    EmbeddingMetrics(embeddings)
    names = set()
    for registry in (REGISTRY, _Metrics().registry, embeddings):
        for family in registry.collect():
            names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def alert_rules() -> list[dict]:
    document = load_yaml(PROMETHEUS / "alerts.yml")[0]
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_reads_series_a_process_exports():
    exported = exported_series()
    problems = [f"deploy/prometheus/alerts.yml: {rule['alert']}: {name} is exported by no process"
                for rule in alert_rules() for name in SERIES.findall(rule["expr"]) if name not in exported]
    assert not problems, "\n".join(problems)
    assert {"WritersroomTrainingFailed", "WritersroomGenerationFailing"} <= {rule["alert"] for rule in alert_rules()}


def test_the_runbooks_watch_list_has_its_alerts():
    runbook = (REPO / "docs" / "runbook.md").read_text()
    watched = set(SERIES.findall(runbook.split("## Metrics and alerts", 1)[1]))
    alerted = {re.sub(r"_(total|bucket|count|sum)$", "", name)
               for rule in alert_rules() for name in SERIES.findall(rule["expr"])}
    missing = {name for name in watched if re.sub(r"_total$", "", name) not in alerted}
    assert not missing, f"docs/runbook.md watches {sorted(missing)} but deploy/prometheus/alerts.yml has no rule on them"


def test_scrape_targets_are_compose_services_serving_metrics():
    config = load_yaml(PROMETHEUS / "prometheus.yml")[0]
    services = compose_services()
    problems = []
    for job in config["scrape_configs"]:
        for target in (t for static in job["static_configs"] for t in static["targets"]):
            host, port = target.rsplit(":", 1)
            if host not in services:
                problems.append(f"deploy/prometheus/prometheus.yml: {job['job_name']}: {host} is no compose service")
                continue
            args = writersroom_args(compose_argv(services[host]))
            served = served_endpoints(args, compose_env(services[host]), f"compose service {host}")
            if "/metrics" not in served.get(int(port), ()):
                problems.append(f"deploy/prometheus/prometheus.yml: {target}: {host} serves "
                                f"{ {p: sorted(paths) for p, paths in served.items()} }")
    scraped = {target.rsplit(":", 1)[0] for job in config["scrape_configs"]
               for static in job["static_configs"] for target in static["targets"]}
    assert {"backend", "slack", "discord", "trainer"} <= scraped
    assert not problems, "\n".join(problems)


def test_the_compose_prometheus_mounts_these_files():
    prometheus = compose_services()["prometheus"]
    mounts = dict(compose_volume_sources(prometheus))
    assert (COMPOSE.parent / "./prometheus").resolve() == PROMETHEUS and mounts["./prometheus"] == "/etc/prometheus"
    assert "/etc/prometheus/alerts.yml" in load_yaml(PROMETHEUS / "prometheus.yml")[0]["rule_files"]


@pytest.mark.parametrize("build", sorted(k8s_builds()))
def test_scrape_annotations_name_a_port_serving_metrics(build):
    problems, annotated = [], set()
    for path, obj in k8s_builds()[build]:
        pod = pod_spec(obj)
        annotations = (obj.get("spec", {}).get("template", {}).get("metadata", {}) or {}).get("annotations") or {}
        if pod is None or annotations.get("prometheus.io/scrape") != "true":
            continue
        annotated.add(obj["metadata"]["name"])
        port, path_ = int(annotations["prometheus.io/port"]), annotations.get("prometheus.io/path", "/metrics")
        container = pod["containers"][0]
        args = writersroom_args([*(container.get("command") or []), *(container.get("args") or [])])
        env = {item["name"]: str(item.get("value", "")) for item in container.get("env") or [] if "value" in item}
        served = served_endpoints(args or [], env, f"{path.relative_to(REPO)}: {obj['metadata']['name']}")
        if path_ not in served.get(port, ()):
            problems.append(f"{path.relative_to(REPO)}: {obj['metadata']['name']}: scrape annotation names "
                            f":{port}{path_}, but it serves { {p: sorted(s) for p, s in served.items()} }")
    deployments = {obj["metadata"]["name"] for _, obj in k8s_builds()[build] if obj.get("kind") == "Deployment"}
    expected = {"writersroom-backend", "writersroom-slack", "writersroom-discord", "writersroom-trainer"} & deployments
    assert expected and expected <= annotated, f"{build}: {sorted(expected - annotated)} have no scrape annotation"
    assert not problems, "\n".join(problems)
