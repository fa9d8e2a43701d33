"""deploy/prometheus and deploy/grafana: promtool accepts them, the alert unit tests pass,
and every metric they query is one the running processes really export.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.resources import resources_of
from app import create_app
from tests.delivery_stack import ROOT, free_port, wait_until

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboard.json"
# Series Prometheus makes itself rather than scrapes.
SYNTHETIC = {"up"}
# Names in PromQL that are functions, keywords or label names, not series.
METRIC_NAME = re.compile(r"\b((?:birthday|http|dramatiq)_[a-z0-9_]+)\b(?!\s*\()")

promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None,
    reason="promtool not installed (Debian package `prometheus`; .ci/run installs it)",
)


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


@needs_promtool
def test_promtool_accepts_the_alert_rules():
    result = run_promtool("check", "rules", "deploy/prometheus/alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_accepts_the_prometheus_config():
    result = run_promtool("check", "config", "deploy/prometheus/prometheus.yml")

    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alert_unit_tests_pass():
    result = run_promtool("test", "rules", "deploy/prometheus/alerts_test.yml")

    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_alert_has_a_summary_a_runbook_and_a_unit_test():
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()

    for rule in alert_rules():
        assert rule["annotations"]["summary"], rule["alert"]
        runbook = rule["annotations"]["runbook"]
        target = runbook.split()[0]
        path, _, anchor = target.partition("#")
        assert (ROOT / path).exists(), runbook
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.M)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{rule['alert']}: no heading for #{anchor} in {path}"
        assert f"alertname: {rule['alert']}" in tests, f"{rule['alert']} has no unit test"


def queried_names() -> set[str]:
    """Every metric name used by the alert rules and the dashboard's queries."""
    expressions = [rule["expr"] for rule in alert_rules()]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        expressions += [target["expr"] for target in panel["targets"]]
    names = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    return names | {name for expr in expressions for name in SYNTHETIC if name in expr}


def exported_names(text: str) -> set[str]:
    """Family names with their sample names (counter _total, histogram _bucket/_sum/_count)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        names |= {sample.name for sample in family.samples}
    return names


def scrape(url: str) -> str | None:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return response.text if response.ok else None


@pytest.mark.timeout(120)
def test_rules_and_dashboard_query_only_metrics_the_processes_export(stack):
    # Given a scheduler and a worker with metrics on ports of their own, and one send
    # (the worker's counters appear with their first use)
    worker_port, scheduler_port = free_port(), free_port()
    stack.create_user()
    stack.processes.start(
        "scheduler",
        [sys.executable, "-m", "tasks.scheduler"],
        SCHEDULER_METRICS_PORT=str(scheduler_port),
    )
    worker_command = [sys.executable, "-m", "dramatiq", "tasks", "--processes", "1"]
    stack.processes.start("worker", worker_command, dramatiq_prom_port=str(worker_port))
    wait_until(lambda: stack.status_counts()["SENT"] == 1, 40, "a send")
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    worker = wait_until(
        lambda: (text := scrape(worker_url)) and "birthday_sends" in text and text,
        20,
        "the worker's metrics",
    )
    scheduler = wait_until(
        lambda: scrape(f"http://127.0.0.1:{scheduler_port}/metrics"), 20, "the scheduler's metrics"
    )
    app = create_app({"DATABASE_URL": stack.db_url, "TESTING": True})
    try:
        app.test_client().get("/users/00000000-0000-4000-8000-000000000000")  # one 404
        api = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        resources_of(app).pool.close()

    # When the names are compared
    exported = exported_names(api) | exported_names(worker) | exported_names(scheduler)
    queried = queried_names()

    # Then every queried name is exported by some process (or made by Prometheus)
    assert {
        "birthday_sends_total",
        "birthday_due_backlog",
        "birthday_scheduler_is_leader",
        "http_requests_total",
    } <= queried
    assert queried - exported - SYNTHETIC == set(), stack.processes.logs()
