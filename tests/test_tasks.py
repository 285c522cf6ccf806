"""The linker's threads and promises (``linker.tasks``): concurrent.futures's meanings, tested as such."""

from __future__ import annotations

import threading

import pytest

from pip_linkmode.linker.tasks import Cancelled, Promise, Workers


def test_a_result_and_an_exception_reach_whoever_waits() -> None:
    with Workers(2) as pool:
        ok = pool.submit(lambda a, b: a + b, 2, 3)
        bad = pool.submit(lambda: 1 // 0)
        assert ok.result() == 5 and ok.done()
        with pytest.raises(ZeroDivisionError):
            bad.result()
        assert bad.done()


def test_an_interrupt_inside_a_task_is_handed_over_not_lost() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with Workers(1) as pool:
        promise = pool.submit(interrupted)
        with pytest.raises(KeyboardInterrupt):
            promise.result()
        assert pool.submit(lambda: "still working").result() == "still working"


def test_a_task_cancelled_before_it_starts_never_runs() -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def first() -> None:
        started.set()
        release.wait()
        ran.append("first")

    with Workers(1) as pool:
        running = pool.submit(first)
        assert started.wait(30)
        queued = pool.submit(ran.append, "second")
        assert queued.cancel() and queued.done()
        assert not running.cancel()  # (it has started: it runs to its end)
        release.set()
        running.result()
        with pytest.raises(Cancelled):
            queued.result()
        assert pool.submit(ran.append, "third").result() is None
    assert ran == ["first", "third"]


def test_a_result_is_set_once() -> None:
    promise: Promise[int] = Promise()
    assert not promise.done()
    promise.set_result(1)
    with pytest.raises(RuntimeError):
        promise.set_exception(ValueError())
    assert promise.result() == 1
    cancelled: Promise[None] = Promise()
    assert cancelled.cancel()
    with pytest.raises(RuntimeError):
        cancelled.set_result(None)


def test_no_more_threads_than_asked_and_shutdown_ends_them_after_their_tasks() -> None:
    gate = threading.Barrier(3)  # two tasks at once, and this thread
    names: set[str] = set()

    def meet() -> None:
        names.add(threading.current_thread().name)
        gate.wait(30)

    pool = Workers(2, name="t")
    promises = [pool.submit(meet), pool.submit(meet)]
    gate.wait(30)
    for promise in promises:
        promise.result()
    done = [pool.submit(names.add, f"after {i}") for i in range(20)]
    threads = list(pool._threads)
    assert len(threads) == 2 and {t.name for t in threads} == {"t_0", "t_1"} <= names
    assert all(t.daemon for t in threads)  # (idle at exit: not joined there)
    pool.shutdown()
    assert all(p.done() for p in done) and not any(t.is_alive() for t in threads)
    with pytest.raises(RuntimeError):
        pool.submit(print)


def test_map_cancels_what_has_not_started_at_the_first_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``Executor.map``: the first failure is raised once the items not
    started are cancelled, and those never run (a failed copy is not kept
    waiting for every other copy). Items a thread started before that are
    held until every cancel is done, so which ones ran is certain."""
    n = 12
    cancels = 0
    all_cancelled = threading.Event()
    real_cancel = Promise.cancel

    def counting_cancel(self: Promise[object]) -> bool:
        nonlocal cancels
        done = real_cancel(self)
        cancels += 1  # (only the thread reading the results cancels)
        if cancels == n:
            all_cancelled.set()
        return done

    monkeypatch.setattr(Promise, "cancel", counting_cancel)
    ran: list[int] = []

    def work(i: int) -> int:
        if i == 0:
            raise ValueError("the first item failed")
        assert all_cancelled.wait(30)
        ran.append(i)
        return i

    with Workers(2) as pool, pytest.raises(ValueError, match="the first item failed"):
        list(pool.map(work, range(n)))
    assert set(ran) <= {1, 2}  # (at most one more item per thread)
    assert cancels == n


def test_a_thread_that_cannot_start_leaves_no_task_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []
    pool = Workers(2)
    real_start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        pool.submit(ran.append, "lost")
    monkeypatch.setattr(threading.Thread, "start", real_start)
    pool.submit(ran.append, "next").result()
    pool.shutdown()
    assert ran == ["next"]
