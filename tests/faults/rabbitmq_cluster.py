"""Private RabbitMQ nodes for fault tests: started, joined into a cluster, stopped,
killed and restarted at will.

Never the machine's own broker (rabbit@localhost on 5672): each node has a name of its
own (`rmqtest1_<run>@localhost`), its own AMQP and distribution ports, and its own
config, data and log directories in a temporary directory owned by the `rabbitmq`
user (pytest's own directories are closed to other users), removed at the end. The nodes run
as the `rabbitmq` user (`rabbitmq-server` would switch to it anyway) and share its
Erlang cookie, which `rabbitmqctl` run the same way finds too.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.delivery_stack import free_port

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
ACCOUNT = "rabbitmq"
CLI_TIMEOUT = 90


def can_run_nodes() -> bool:
    """rabbitmq-server installed, and this process root or the rabbitmq user."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return False
    try:
        account = pwd.getpwnam(ACCOUNT)
    except KeyError:
        return False
    return os.geteuid() in (0, account.pw_uid) and shutil.which("runuser") is not None


def _as_rabbitmq(command: list[str], env: dict[str, str]) -> list[str]:
    """`command` run as the rabbitmq user with exactly `env` (and its home: the cookie)."""
    home = pwd.getpwnam(ACCOUNT).pw_dir
    prefix = ["runuser", "-u", ACCOUNT, "--"] if os.geteuid() == 0 else []
    assignments = [f"{name}={value}" for name, value in {**env, "HOME": home}.items()]
    return [*prefix, "env", "-i", *assignments, *command]


def _base_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


class RabbitNode:
    """One node: `start()`, `stop()`, `kill()`, `ctl(...)`, `url`."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.port = free_port()
        self.dist_port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None
        self._write_files()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def pid_file(self) -> Path:
        return self.directory / "node.pid"

    def _write_files(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("mnesia", "log"):
            (self.directory / sub).mkdir(exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        # Its own env file instead of /etc/rabbitmq/rabbitmq-env.conf, which names the
        # machine's node; the same loopback-only distribution as that file.
        (self.directory / "rabbitmq-env.conf").write_text(
            "ERL_EPMD_ADDRESS=127.0.0.1\n"
            'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
        )
        account = pwd.getpwnam(ACCOUNT)
        for path in (self.directory, *self.directory.rglob("*")):
            os.chown(path, account.pw_uid, account.pw_gid)

    def env(self) -> dict[str, str]:
        """What rabbitmq-server and rabbitmqctl need to find this node and only it."""
        directory = self.directory
        return {
            **_base_env(),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_MNESIA_DIR": str(directory / "mnesia" / self.name),
            "RABBITMQ_QUORUM_DIR": str(directory / "mnesia" / self.name / "quorum"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(directory / "feature_flags"),
        }

    def start(self) -> None:
        """Launch the node in the background (see `await_startup`)."""
        log = open(self.directory / "server.out", "a")  # noqa: SIM115
        self.process = subprocess.Popen(
            _as_rabbitmq([str(RABBITMQ_BIN / "rabbitmq-server")], self.env()),
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed with its children
        )

    def await_startup(self, timeout: float = 90) -> None:
        """Wait until the node's RabbitMQ application runs."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.ctl("await_startup", "--timeout", "30")
            if done.returncode == 0:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"node {self.name} exited: {self.server_output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.name} did not start: {done.stderr}")
            time.sleep(0.5)

    def ctl(self, *args: str, tool: str = "rabbitmqctl") -> subprocess.CompletedProcess:
        """rabbitmqctl (or rabbitmq-queues, ...) against this node."""
        command = [str(RABBITMQ_BIN / tool), "-q", "-n", self.name, *args]
        return subprocess.run(
            _as_rabbitmq(command, _base_env()),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def join(self, seed: RabbitNode) -> None:
        """Make this running node a member of `seed`'s cluster."""
        for args in (("stop_app",), ("join_cluster", seed.name), ("start_app",)):
            done = self.ctl(*args)
            if done.returncode != 0:
                raise RuntimeError(f"{self.name} {args[0]} failed: {done.stderr}")

    def os_pid(self) -> int | None:
        """The node's beam process, from its pid file (None before it wrote one)."""
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """A clean stop (`rabbitmqctl stop`), waiting until the process is gone."""
        if not self.is_alive():
            return
        self.ctl("stop", str(self.pid_file))
        self._reap(timeout=60)

    def kill(self) -> None:
        """kill -9 of the node and its helpers: a crash, no goodbye to its peers."""
        if self.process is None:
            return
        pid = self.os_pid()
        if pid is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reap(timeout=30)

    def _reap(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def server_output(self) -> str:
        path = self.directory / "server.out"
        return path.read_text()[-3000:] if path.exists() else ""


class RabbitCluster:
    """`size` private nodes joined into one cluster; `close()` removes every one."""

    def __init__(self, size: int = 3) -> None:
        run = uuid.uuid4().hex[:6]
        self.directory = Path(tempfile.mkdtemp(prefix="birthday-rmq-"))
        account = pwd.getpwnam(ACCOUNT)
        os.chown(self.directory, account.pw_uid, account.pw_gid)
        directory = self.directory
        self.nodes = [
            RabbitNode(f"rmqtest{number}_{run}@localhost", directory / f"node{number}")
            for number in range(1, size + 1)
        ]

    @property
    def url(self) -> str:
        """RABBITMQ_URL naming every node, first node first."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 120) -> float:
        """Start every node at once, join the others to the first; returns seconds taken."""
        started = time.monotonic()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.await_startup(timeout)
        seed, *others = self.nodes
        for node in others:
            node.join(seed)
        return time.monotonic() - started

    def node(self, name: str) -> RabbitNode:
        return next(node for node in self.nodes if node.name == name)

    def any_running(self) -> RabbitNode:
        return next(node for node in self.nodes if node.is_alive())

    def queues(self, *fields: str) -> dict[str, list[str]]:
        """`list_queues name FIELDS...` asked of a live node: queue name -> field values."""
        done = self.any_running().ctl("list_queues", "--no-table-headers", "name", *fields)
        rows = [line.split("\t") for line in done.stdout.splitlines() if line.strip()]
        return {row[0]: row[1:] for row in rows}

    def close(self) -> None:
        """Kill every node this cluster started, whatever state it is in; remove its files."""
        try:
            for node in self.nodes:
                node.kill()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def server_logs(self) -> str:
        return "\n".join(f"--- {node.name}\n{node.server_output()}" for node in self.nodes)
