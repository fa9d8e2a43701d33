"""Figures of a benchmark run and bench/RESULTS.md written from them.

Every figure is the project's measurement next to a baseline measured in the same run,
with the exact command that produced both and the target the ratio is held to. Nothing
in RESULTS.md is typed by hand: `python -m bench` (`make bench`) writes it whole.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psycopg


@dataclass(frozen=True)
class Figure:
    """One measure: the project's value, the baseline's, and the target for their ratio.

    `better` says which way is good: "higher" for rates (ratio = project / baseline
    must be ≥ target), "lower" for durations and latencies (ratio ≤ target).
    """

    measure: str
    command: str
    project: float
    baseline: float
    unit: str
    better: str
    target: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.project / self.baseline if self.baseline else float("inf")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.better == "higher":
            return self.ratio >= self.target
        return self.ratio <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return "—"
        return f"{'≥' if self.better == 'higher' else '≤'} {self.target:g}×"

    def line(self) -> str:
        """One line for the terminal."""
        verdict = {True: "met", False: "NOT met", None: "no target"}[self.met]
        return (
            f"{self.measure}: {_number(self.project)} {self.unit} vs baseline "
            f"{_number(self.baseline)} {self.unit} = {self.ratio:.2f}× "
            f"(target {self.target_text()}: {verdict})"
        )


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    # A fixed version query of a tool on PATH.
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def machine(database_url: str) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    with psycopg.connect(database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    packages = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("dramatiq", "pika", "psycopg", "psycopg-pool", "flask", "gunicorn")
    )
    return [
        ("cores (nproc)", str(os.cpu_count())),
        ("memory", f"{memory_kib / 1024 / 1024:.1f} GiB"),
        ("CPU", platform.processor() or platform.machine()),
        ("Python", platform.python_version()),
        ("PostgreSQL", postgres),
        ("RabbitMQ", _version(["rabbitmqctl", "version"])),
        ("Redis", _version(["redis-server", "--version"])),
        ("wrk", _version(["wrk", "--version"])),
        ("packages", packages),
    ]


def _how(figure: Figure) -> str:
    """One line of "How each figure was measured"."""
    note = f" — {figure.note}" if figure.note else ""
    return f"- **{figure.measure}**: `{figure.command}`{note}"


def write_results(
    path: Path, figures: list[Figure], about: list[tuple[str, str]], command: str
) -> None:
    """Write RESULTS.md: machine, date, then one row per figure."""
    rows = [
        "| measure | project | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        met = {True: "yes", False: "**no**", None: "—"}[figure.met]
        rows.append(
            f"| {figure.measure} | {_number(figure.project)} {figure.unit} "
            f"| {_number(figure.baseline)} {figure.unit} | {figure.ratio:.2f}× "
            f"| {figure.target_text()} | {met} |"
        )
    commands = [_how(figure) for figure in figures]
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; every figure",
            "is the project's measurement next to a baseline measured in the same run.",
            "Ratios are project / baseline: for rates higher is better, for durations and",
            "latencies lower is better.",
            "",
            "## Machine",
            "",
            *[f"- {name}: {value}" for name, value in about],
            "",
            "## Figures",
            "",
            *rows,
            "",
            "## How each figure was measured",
            "",
            *commands,
            "",
        ]
    )
    path.write_text(text)
