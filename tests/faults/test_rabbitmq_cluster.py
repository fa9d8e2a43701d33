"""The delivery promise on a three-node RabbitMQ cluster while nodes go away.

One cluster of private nodes serves the module (it takes the better part of a minute
to form on a small machine); each test starts with every node running and the queues
empty, on a database of its own. The service's processes get RABBITMQ_URL naming the
three nodes and are never restarted by the test.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from tests.delivery_stack import (
    Processes,
    Provider,
    Stack,
    calls_above,
    environment,
    insert_due_users,
    wait_until,
)
from tests.faults.rabbitmq_cluster import RabbitCluster, RabbitNode, can_run_nodes

pytestmark = [pytest.mark.faults, pytest.mark.cluster]
QUEUES = ("greetings", "greetings.DQ", "greetings.XQ")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    """Three private nodes joined into one cluster; every node killed at the end."""
    if not can_run_nodes():
        pytest.skip("needs rabbitmq-server, runuser and root (or the rabbitmq user)")
    nodes = RabbitCluster(3)
    try:
        seconds = nodes.start()
        print(f"\ncluster of 3 nodes formed in {seconds:.1f} s")
        yield nodes
    finally:
        nodes.close()


@pytest.fixture
def cluster_stack(cluster, fresh_db_url, provider: Provider, tmp_path) -> Iterator[Stack]:
    """Every node running, queues empty, the service's processes pointed at all three."""
    heal(cluster)
    purge_queues(cluster.any_running())
    provider.reset()
    processes = Processes(environment(fresh_db_url, cluster.url, provider), tmp_path)
    try:
        yield Stack(fresh_db_url, "/", processes, provider)
    finally:
        processes.stop_all()


def heal(cluster: RabbitCluster) -> None:
    """Start whatever node a test left stopped and wait until it runs."""
    stopped = [node for node in cluster.nodes if not node.is_alive()]
    for node in stopped:
        node.start()
    for node in stopped:
        node.await_startup()


def purge_queues(node: RabbitNode) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    try:
        for name in QUEUES:
            channel = connection.channel()
            try:
                channel.queue_purge(name)
            except pika.exceptions.ChannelClosedByBroker:
                continue  # not declared yet
            channel.close()
    finally:
        connection.close()


def add_due_users(stack: Stack, count: int) -> None:
    """`count` more users whose birthday greeting is due now (the scheduler plans them)."""
    with stack.connect() as conn:
        insert_due_users(conn, count, "Cluster")


def sent(stack: Stack) -> int:
    with stack.connect() as conn:
        row = conn.execute("SELECT count(*) AS n FROM message_logs WHERE status = 'SENT'")
        return row.fetchone()["n"]


def seconds_until_progress(stack: Stack, beyond: int, timeout: float) -> float:
    """Seconds until more than `beyond` greetings are SENT (sending resumed)."""
    started = time.monotonic()
    wait_until(lambda: sent(stack) > beyond, timeout, f"more than {beyond} greetings SENT")
    return time.monotonic() - started


def node_of(process: subprocess.Popen, cluster: RabbitCluster) -> RabbitNode:
    """The node a process holds its AMQP connection to (waits until it holds one)."""
    found = wait_until(
        lambda: connected_node(process, cluster), 30, f"process {process.pid} to connect"
    )
    assert isinstance(found, RabbitNode)
    return found


def connected_node(process: subprocess.Popen, cluster: RabbitCluster) -> RabbitNode | None:
    """From the kernel's socket table: the live node `process` is connected to, if any."""
    listed = subprocess.run(
        ["ss", "-Htnp", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    ports = {node.port: node for node in cluster.nodes if node.is_alive()}
    for line in listed.splitlines():
        if f"pid={process.pid}," not in line:
            continue
        port = int(line.split()[3].rsplit(":", 1)[1])
        if port in ports:
            return ports[port]
    return None


def queue_members(cluster: RabbitCluster) -> dict[str, set[str]]:
    """Queue name -> names of its online members."""
    rows = cluster.queues("type", "online")
    return {
        name: set(re.findall(r"rmqtest\w+@localhost", online))
        for name, (kind, online) in rows.items()
        if kind == "quorum"
    }


def wait_for_all_members(cluster: RabbitCluster, timeout: float) -> None:
    names = {node.name for node in cluster.nodes}
    wait_until(
        lambda: all(queue_members(cluster).get(queue) == names for queue in QUEUES),
        timeout,
        "every queue to have its three members online",
    )


def deliveries_per_key(stack: Stack) -> Counter:
    return Counter(d["idempotency_key"] for d in stack.provider.deliveries())


def assert_each_sent_greeting_posted_once(stack: Stack, expected: int) -> None:
    """`expected` greetings SENT, each posted to the provider exactly once. Losing a
    node closes connections but kills no worker: a send in flight finishes and records
    SENT, and the message redelivered for it (or republished by recovery) finds the
    greeting taken, so no greeting may reach the provider twice."""
    calls = stack.provider.calls_per_key()
    sent = stack.keys_with_status("SENT")
    assert len(sent) == expected
    assert calls_above(calls, 1) == {}
    assert set(calls) == sent


@pytest.mark.timeout(420)
def test_losing_one_node_at_a_time_delivers_every_greeting_once(cluster, cluster_stack):
    stack = cluster_stack
    # Given 1,500 greetings due, sent by a worker and a scheduler that know all three nodes
    add_due_users(stack, 1500)
    fast_planning = {"PLANNING_INTERVAL_SECONDS": "2"}
    # 100 sends/s: the spike lasts about 20 s, so the nodes are lost while it runs
    worker = stack.processes.worker(
        processes=1, threads=8, PROVIDER_RATE_LIMIT="100", **fast_planning
    )
    scheduler = stack.processes.scheduler(**fast_planning)
    wait_until(lambda: sent(stack) >= 200, 90, "the first 200 greetings")
    members = queue_members(cluster)
    assert set(members) == set(QUEUES), cluster.queues("type")
    assert all(members[queue] == {node.name for node in cluster.nodes} for queue in QUEUES)

    # When the node leading `greetings` is stopped while they are being sent
    leader = cluster.node(cluster.queues("leader")["greetings"][0])
    leader.stop()
    sent_at_stop = sent(stack)
    assert sent_at_stop < 1450, f"{sent_at_stop} already SENT: the node was not lost mid-spike"
    first_loss = seconds_until_progress(stack, sent_at_stop + 50, 90)
    leader.start()
    leader.await_startup()

    # ... and, once it is back, the node the scheduler publishes to is killed with -9,
    # with 500 more greetings becoming due so that the scheduler must publish again
    add_due_users(stack, 500)
    victim = node_of(scheduler, cluster)
    victim.kill()
    second_loss = seconds_until_progress(stack, sent(stack) + 50, 90)
    wait_until(lambda: sent(stack) == 2000, 240, "all 2,000 greetings SENT")

    # Then each reached the provider once, nothing is stuck, no process was restarted
    delivered, posts = deliveries_per_key(stack), stack.provider.calls_per_key()
    statuses = stack.status_counts()
    print(
        f"\ncluster: delivered {len(delivered)} of 2000, duplicates at the provider "
        f"{sum(delivered.values()) - len(delivered)}, repeated POSTs "
        f"{sum(posts.values()) - len(posts)}; sending resumed {first_loss:.1f} s after the "
        f"queue leader {leader.name} stopped and {second_loss:.1f} s after the scheduler's "
        f"node {victim.name} was killed; statuses {dict(statuses)}"
    )
    assert_each_sent_greeting_posted_once(stack, 2000)
    assert statuses == Counter({"SENT": 2000, "SCHEDULED": 2000})
    assert worker.poll() is None and scheduler.poll() is None
    assert node_of(scheduler, cluster) is not victim  # it reconnected to a live node

    # And the killed node rejoins: every queue has its three members again
    victim.start()
    victim.await_startup()
    wait_for_all_members(cluster, 60)


@pytest.mark.timeout(300)
def test_a_cluster_without_its_majority_fails_nothing_and_delivers_all_when_it_returns(
    cluster, cluster_stack
):
    stack = cluster_stack
    # Given a worker and a scheduler running on the cluster, queues declared
    stack.processes.worker(threads=4, PLANNING_INTERVAL_SECONDS="2")
    scheduler = stack.processes.scheduler(PLANNING_INTERVAL_SECONDS="2")
    wait_until(lambda: set(queue_members(cluster)) >= set(QUEUES), 60, "queues declared")

    # When two of the three nodes stop and 100 greetings become due
    _, second, third = cluster.nodes
    second.stop()
    third.stop()
    add_due_users(stack, 100)
    time.sleep(10)  # planning, dispatch and several leases pass without a majority
    during = stack.status_counts()
    calls_during = len(stack.provider.requests_seen())

    # Then nothing was sent or FAILED: the greetings wait, claimed or due
    print(f"\nwithout a majority: {dict(during)}, provider calls {calls_during}")
    assert calls_during == 0
    assert during["FAILED"] == 0 and during["SENT"] == 0

    # And when the majority returns, recovery publishes them and each is delivered once
    returned = time.monotonic()
    second.start()
    third.start()
    wait_until(lambda: sent(stack) == 100, 180, "all 100 greetings SENT")
    print(f"all 100 sent {time.monotonic() - returned:.1f} s after the two nodes restarted")
    assert_each_sent_greeting_posted_once(stack, 100)
    assert stack.status_counts() == Counter({"SENT": 100, "SCHEDULED": 100})
    assert scheduler.poll() is None
    second.await_startup()
    third.await_startup()
