"""The deploy files, checked as far as they can be without a container engine."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "api", "worker", "scheduler", "provider"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())


def default_services() -> dict:
    """The services `docker compose up` starts: those in no profile."""
    return {name: s for name, s in compose()["services"].items() if not s.get("profiles")}


def test_compose_runs_every_process_from_one_image_with_its_dependencies():
    services = default_services()

    assert set(services) == APP_SERVICES | {
        "postgres",
        "rabbitmq",
        "redis",
        "prometheus",
        "grafana",
    }
    assert {name for name, s in services.items() if s.get("build") == ".."} == APP_SERVICES
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.13")
    assert services["worker"]["command"][0] == "deploy/start-worker"
    assert services["scheduler"]["command"] == ["python", "-m", "tasks.scheduler"]


def test_compose_mounts_the_shipped_prometheus_and_grafana_files():
    services = compose()["services"]

    mounts = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / "deploy" / source).exists(), source
                mounts[target] = source
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./prometheus/alerts.yml"
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/birthday.yml").read_text()
    )
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert mounts[f"{dashboards_dir}/birthday.json"] == "./grafana/dashboard.json"
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    scraped = {
        c["job_name"]: c["dns_sd_configs"][0]
        for c in config["scrape_configs"]
        if "dns_sd_configs" in c
    }
    # Each scrape job names a compose service of the app, on the port it serves metrics on.
    assert {job: (sd["names"][0], sd["port"]) for job, sd in scraped.items()} == {
        "birthday-api": ("api", 8000),
        "birthday-worker": ("worker", 9191),
        "birthday-scheduler": ("scheduler", 9200),
    }
    assert set(config["rule_files"]) == {"alerts.yml"}


def test_compose_waits_for_healthy_dependencies_and_a_finished_migration():
    services = compose()["services"]

    for name in ("postgres", "rabbitmq", "redis", "api", "provider"):
        assert "healthcheck" in services[name], name
    for name in ("api", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_operator_tools_start_only_with_the_tools_profile_and_only_on_localhost():
    services = compose()["services"]
    tools = {name for name, s in services.items() if s.get("profiles")}

    assert tools == {"pgadmin", "rabbitmq-ui"}
    for name in tools:
        assert services[name]["profiles"] == ["tools"]
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name
    for name, service in default_services().items():
        if name != "api":  # only the API is published beyond the host itself
            assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name
    assert services["rabbitmq-ui"]["command"][-1] == "TCP:rabbitmq:15672"


def test_pgadmin_takes_its_login_from_the_environment_and_knows_the_database():
    pgadmin = compose()["services"]["pgadmin"]
    postgres = compose()["services"]["postgres"]
    servers = json.loads((ROOT / "deploy" / "pgadmin" / "servers.json").read_text())["Servers"]

    assert pgadmin["environment"]["PGADMIN_DEFAULT_EMAIL"].startswith("${PGADMIN_DEFAULT_EMAIL")
    assert pgadmin["environment"]["PGADMIN_DEFAULT_PASSWORD"].startswith(
        "${PGADMIN_DEFAULT_PASSWORD"
    )
    assert "./pgadmin/servers.json:/pgadmin4/servers.json:ro" in pgadmin["volumes"]
    [server] = servers.values()
    assert (server["Host"], server["Port"]) == ("postgres", 5432)
    assert server["MaintenanceDB"] == postgres["environment"]["POSTGRES_DB"]
    assert server["Username"] == "postgres"


def test_the_dockerfile_runs_as_a_non_root_user_with_a_health_check():
    lines = (ROOT / "Dockerfile").read_text().splitlines()

    def position(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    assert lines[position("FROM ")].endswith("-slim")
    assert lines[position("USER ")] == "USER app"
    assert "/health/live" in lines[position("HEALTHCHECK ") + 1]
    # Dependencies are installed before the code is copied: a layer of their own.
    assert (
        position("COPY requirements.txt")
        < position("RUN pip install -r requirements.txt")
        < position("COPY --chown=app:app . .")
    )


def test_the_gunicorn_config_opens_the_pool_after_fork_and_shuts_down_gracefully(monkeypatch):
    # The config sets PROMETHEUS_MULTIPROC_DIR for gunicorn's workers: keep it out
    # of this test process (monkeypatch restores the variable afterwards).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))

    assert config["preload_app"] is False
    assert callable(config["post_worker_init"]) and callable(config["worker_exit"])
    assert config["graceful_timeout"] > 0


def test_the_shell_scripts_parse():
    for script in ("keep-running", "start-worker", "backup.sh", "restore.sh"):
        result = subprocess.run(
            ["bash", "-n", str(ROOT / "deploy" / script)],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert result.returncode == 0, (script, result.stderr)


def test_every_systemd_unit_restarts_its_process():
    units = sorted((ROOT / "deploy" / "systemd").glob("*.service"))

    assert [unit.name for unit in units] == [
        "birthday-api.service",
        "birthday-scheduler.service",
        "birthday-worker@.service",
    ]
    for unit in units:
        assert "Restart=always" in unit.read_text(), unit.name


def test_compose_gives_the_api_its_tokens_from_a_secret_file():
    config = compose()
    api = config["services"]["api"]

    assert api["environment"]["API_TOKENS_FILE"] == "/run/secrets/api_tokens"
    assert api["secrets"] == ["api_tokens", "unsubscribe_secret"]
    assert config["secrets"]["api_tokens"] == {"file": "./secrets/api_tokens"}
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    for service in config["services"].values():  # no token written into the file itself
        assert not {"API_TOKEN", "API_TOKENS"} & set(service.get("environment", {}))


def test_compose_gives_the_api_and_the_worker_the_unsubscribe_links_address_and_secret():
    config = compose()

    for name in ("api", "worker"):
        service = config["services"][name]
        assert (
            service["environment"]["UNSUBSCRIBE_SECRET_FILE"] == "/run/secrets/unsubscribe_secret"
        )
        assert service["environment"]["PUBLIC_BASE_URL"]
        assert "unsubscribe_secret" in service["secrets"]
    assert config["secrets"]["unsubscribe_secret"] == {"file": "./secrets/unsubscribe_secret"}


def test_the_systemd_api_unit_binds_beyond_loopback_with_a_token_file_and_reloads():
    unit = (ROOT / "deploy" / "systemd" / "birthday-api.service").read_text().splitlines()

    assert "Environment=BIND=0.0.0.0:8000" in unit
    assert "Environment=API_TOKENS_FILE=/etc/birthday/api_tokens" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit


def test_env_example_lists_every_setting():
    from dataclasses import fields

    from config import Settings

    listed = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert {f.name.upper() for f in fields(Settings)} - listed == set()
    assert "API_TOKENS_FILE" in listed


class ComposeOverrideLoader(yaml.SafeLoader):
    """Reads Compose's `!override` tag as the plain mapping it replaces the base's with."""


ComposeOverrideLoader.add_constructor(
    "!override", lambda loader, node: loader.construct_mapping(node)
)


def cluster_compose() -> dict:
    text = (ROOT / "deploy" / "docker-compose.cluster.yml").read_text()
    return yaml.load(text, Loader=ComposeOverrideLoader)  # noqa: S506 - SafeLoader subclass


def test_the_cluster_file_runs_three_rabbitmq_nodes_in_the_cluster_profile_only():
    services = cluster_compose()["services"]
    nodes = {name: services[name] for name in ("rabbitmq1", "rabbitmq2", "rabbitmq3")}
    conf = (ROOT / "deploy" / "rabbitmq-cluster.conf").read_text()

    assert all(node["profiles"] == ["cluster"] for node in nodes.values())
    assert {node["hostname"] for node in nodes.values()} == set(nodes)
    assert all(
        "./rabbitmq-cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro" in node["volumes"]
        for node in nodes.values()
    )
    cookies = {node["environment"]["RABBITMQ_ERLANG_COOKIE"] for node in nodes.values()}
    assert len(cookies) == 1 and cookies.pop().startswith("${RABBITMQ_ERLANG_COOKIE:?")
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    listed = re.findall(r"classic_config\.nodes\.\d+ = rabbit@(\w+)", conf)
    assert sorted(listed) == sorted(nodes)
    # The default stack keeps its single broker and names no cluster node.
    assert not set(nodes) & set(default_services())
    assert services["rabbitmq"]["profiles"] == ["single-node"]


def test_the_cluster_file_points_every_app_process_at_all_three_nodes():
    from config import Settings

    services = cluster_compose()["services"]

    for name in APP_SERVICES:
        url = services[name]["environment"]["RABBITMQ_URL"]
        hosts = [address.split("@")[1].split(":")[0] for address in url.split(",")]
        assert hosts == ["rabbitmq1", "rabbitmq2", "rabbitmq3"], name
        assert len(Settings.from_env({"RABBITMQ_URL": url}).rabbitmq_urls) == 3
    for name in ("api", "worker", "scheduler"):
        depends = services[name]["depends_on"]
        assert "rabbitmq" not in depends, name
        assert all(depends[f"rabbitmq{n}"]["condition"] == "service_healthy" for n in (1, 2, 3))
