"""The outbox keeps order, deletes only on ack, coalesces heartbeats and survives kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.outbox import Outbox

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3", max_droppable=3)
    yield box
    box.close()


def test_pending_returns_items_in_insertion_order(outbox: Outbox) -> None:
    ids = [outbox.put(f"t/{i}", f"p{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    items = outbox.pending(10)
    assert [i.topic for i in items] == [f"t/{i}" for i in range(5)]
    assert [i.payload for i in items] == [f"p{i}".encode() for i in range(5)]
    assert [i.id for i in outbox.pending(2)] == ids[:2]
    assert [i.id for i in outbox.pending(10, after_id=ids[2])] == ids[3:]


def test_ack_deletes_only_that_item(outbox: Outbox) -> None:
    a, b, c = (outbox.put("t", bytes([n])) for n in range(3))
    assert outbox.ack(b) is True
    assert outbox.ack(b) is False
    assert [i.id for i in outbox.pending(10)] == [a, c]
    assert outbox.depth() == 2


def test_ids_are_never_reused_after_the_outbox_empties(outbox: Outbox) -> None:
    first = outbox.put("t", b"1")
    outbox.ack(first)
    assert outbox.put("t", b"2") > first


def test_oldest_droppable_items_are_dropped_and_counted(outbox: Outbox) -> None:
    sos = outbox.put("sos", b"help")
    beats = [outbox.put("hb", str(n).encode(), droppable=True) for n in range(5)]
    cancel = outbox.put("cancel", b"never mind")
    # max_droppable=3: the two oldest heartbeats went, SOS and cancel never go
    assert [i.id for i in outbox.pending(10)] == [sos, *beats[2:], cancel]
    assert outbox.dropped_since_last() == 2
    assert outbox.dropped_since_last() == 0


def test_non_droppable_items_are_never_dropped(outbox: Outbox) -> None:
    for n in range(20):
        outbox.put("sos", str(n).encode())
    outbox.put("hb", b"x", droppable=True)
    assert outbox.depth() == 21
    assert outbox.dropped_since_last() == 0


def test_seq_increases_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    first = [box.next_seq() for _ in range(3)]
    box.close()
    box = Outbox(path)
    later = box.next_seq()
    box.close()
    assert first == sorted(set(first))
    assert later > first[-1]


def test_dropped_count_and_items_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path, max_droppable=1)
    box.put("hb", b"1", droppable=True)
    box.put("hb", b"2", droppable=True)
    box.close()
    box = Outbox(path, max_droppable=1)
    assert [i.payload for i in box.pending(10)] == [b"2"]
    assert box.dropped_since_last() == 1
    box.close()


def test_concurrent_puts_and_acks_lose_nothing(outbox: Outbox) -> None:
    per_thread = 50

    def producer(name: str) -> None:
        for n in range(per_thread):
            outbox.put(name, str(n).encode())

    threads = [threading.Thread(target=producer, args=(f"t{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    acked = 0
    while any(t.is_alive() for t in threads) or outbox.depth():
        for item in outbox.pending(10):
            acked += outbox.ack(item.id)
    for thread in threads:
        thread.join()
    assert acked == 4 * per_thread
    seqs: list[int] = []
    seq_threads = [
        threading.Thread(target=lambda: seqs.extend(outbox.next_seq() for _ in range(50)))
        for _ in range(4)
    ]
    for thread in seq_threads:
        thread.start()
    for thread in seq_threads:
        thread.join()
    assert len(set(seqs)) == 200


def test_put_that_returned_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    child = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from edge_agent.outbox import Outbox
        box = Outbox(Path({str(path)!r}))
        for n in range(20):
            box.put("anbu/v1/d/h/dev-1/event/sos", b"sos-%d" % n)
        seq = box.next_seq()
        print("ok", seq, flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[0] == "ok"
        process.send_signal(signal.SIGKILL)
        assert process.wait(5) == -signal.SIGKILL
    finally:
        process.kill()
        process.wait()
    box = Outbox(path)
    try:
        assert [i.payload for i in box.pending(100)] == [b"sos-%d" % n for n in range(20)]
        assert box.next_seq() > int(line[1])
    finally:
        box.close()


def test_max_droppable_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_droppable"):
        Outbox(tmp_path / "x.sqlite3", max_droppable=0)


def test_held_messages_wait_for_the_collector_not_the_broker(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "held.sqlite3")
    item = box.put_held("a" * 32, "t/sos", b"sos-1")
    assert box.resend_held() == 0  # still waiting in the outbox: nothing to add
    box.ack(item)  # the broker has it ...
    assert box.depth() == 0 and box.held() == [("a" * 32, "t/sos", b"sos-1")]
    assert box.resend_held() == 1  # ... but no collector confirmed it: send it again
    assert [i.payload for i in box.pending()] == [b"sos-1"]
    assert box.release("a" * 32) and not box.release("a" * 32)
    box.ack(box.pending()[0].id)
    assert box.resend_held() == 0 and box.held() == []
    box.close()


def test_held_messages_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "held.sqlite3")
    box.ack(box.put_held("k", "t/sos", b"x"))
    box.close()
    again = Outbox(tmp_path / "held.sqlite3")
    assert again.held() == [("k", "t/sos", b"x")]
    assert again.resend_held() == 1
    again.close()
