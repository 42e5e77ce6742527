"""`ledger consume` processes joining and leaving one consumer group while events flow.

A starts alone; B joins mid-stream; C joins and leaves again, so that partitions C worked
on go back to the (still running, possibly caching) process that had them before; A
leaves (SIGTERM); B dies (SIGKILL) and both come back. Every rebalance hands partitions
over with the offsets stored in the database: in the end every event is applied exactly
once and the read models equal the pure fold."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.consumer_process import ConsumerProcess
from tests.support.exactly_once import (
    PacedProducer,
    assert_applied_exactly_once,
    assigned_partitions,
    assignments,
    stored_offsets,
    topic_ends,
    wait_caught_up,
)
from tests.support.streams import stream
from tests.support.waiting import wait_until

ALL = {0, 1, 2, 3}


def assignment_lines(process: ConsumerProcess) -> list[str]:
    return assignments(process.log.read_text(errors="replace")) if process.log.exists() else []


def logs(*processes: ConsumerProcess) -> Callable[[], str]:
    return lambda: "\n".join(f"=== {p.log.name}\n{p.tail(25)}" for p in processes)


class Group:
    """The test's view of the consumer group: which process owns which partitions."""

    def __init__(self, url: str, bootstrap: str, topic: str, producer: PacedProducer) -> None:
        self.url = url
        self.bootstrap = bootstrap
        self.topic = topic
        self.producer = producer
        self.processes: list[ConsumerProcess] = []
        self._seen: dict[int, int] = {}

    def logs(self) -> str:
        return logs(*self.processes)()

    def mark(self) -> None:
        """Remember how many assignments every process has logged so far."""
        self._seen = {id(p): len(assignment_lines(p)) for p in self.processes}

    def settled(self, *live: ConsumerProcess) -> dict[str, set[int]]:
        """Wait until each of `live` logged a new assignment since `mark()` and together
        they own every partition, each exactly once; returns {log name: partitions}."""

        def owned() -> dict[str, set[int]] | None:
            found: dict[str, set[int]] = {}
            for p in live:
                lines = assignment_lines(p)
                if len(lines) <= self._seen.get(id(p), 0):
                    return None
                found[p.log.name] = assigned_partitions(lines[-1])
            if sum(len(parts) for parts in found.values()) != len(ALL):
                return None
            return found if set().union(*found.values()) == ALL else None

        names = [p.log.name for p in live]
        wait_until(lambda: owned() is not None, 45, f"a settled group of {names}\n{self.logs()}")
        result = owned()
        assert result is not None
        assert all(result.values()), f"a member without partitions: {result}\n{self.logs()}"
        return result

    def prove_work(self, owned: dict[str, set[int]], step: int) -> None:
        """Each owner stores offsets on its partitions past the current end offsets: those
        records were produced after the assignment, so only their owner can have read them."""
        marks = topic_ends(self.bootstrap, self.topic)
        self.producer.allow(step)
        for name, partitions in owned.items():
            wait_until(
                lambda partitions=partitions: all(
                    stored_offsets(self.url, self.topic).get(p, 0) > marks[p] for p in partitions
                ),
                45,
                f"{name} consuming {sorted(partitions)} past {marks}\n{self.logs()}",
            )
        assert not self.producer.done


@pytest.mark.slow
def test_partitions_move_between_consumers_without_loss_or_double_counting(
    kafka_bootstrap: str,
    ledger_database: str,
    unique_topic: str,
    consumer_factory: Callable[[], ConsumerProcess],
) -> None:
    events = stream(packs=300, events_per_pack=80, seed=99, tag="rebalance-")
    step = len(events) // 10
    a, b, c = consumer_factory(), consumer_factory(), consumer_factory()

    with PacedProducer(kafka_bootstrap, unique_topic, events, allowed=step) as producer:
        group = Group(ledger_database, kafka_bootstrap, unique_topic, producer)
        group.processes = [a, b, c]

        # A alone takes every partition.
        group.mark()
        a.start()
        group.prove_work(group.settled(a), step)

        # B joins mid-stream: the two split the partitions and both work.
        group.mark()
        b.start()
        two = group.settled(a, b)
        group.prove_work(two, step)

        # C joins and works, then leaves (SIGTERM): the partitions it took from A and B go
        # back to them, while they kept running since they last had them.
        group.mark()
        c.start()
        three = group.settled(a, b, c)
        group.prove_work(three, step)
        group.mark()
        c.stop()
        assert c.process is not None and c.process.returncode == 0, group.logs()
        back = group.settled(a, b)
        returned = {
            (name, p)
            for name, partitions in back.items()
            for p in partitions & two[name] & three[c.log.name]
        }
        assert returned, f"no partition went back to its earlier owner: {two} {three} {back}"
        group.prove_work(back, step)

        # A leaves mid-stream (SIGTERM): B takes over A's partitions from the stored offsets.
        group.mark()
        a.stop()
        assert a.process is not None and a.process.returncode == 0, group.logs()
        group.prove_work(group.settled(b), step)

        # B dies (SIGKILL) mid-stream; A and B come back and share the rest.
        b.kill()
        a.start()
        b.start()
        producer.finish()

    ends = wait_caught_up(ledger_database, kafka_bootstrap, unique_topic, 90, group.logs)
    for process in (a, b):
        assert process.process is not None and process.process.poll() is None, group.logs()
    assert_applied_exactly_once(ledger_database, unique_topic, events, ends)
