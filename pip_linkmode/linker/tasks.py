"""Placing threads and the results they promise: what the linker needs of ``concurrent.futures``.

``concurrent.futures`` imports ``logging`` (and through it ``traceback``,
``tokenize``, ``string``): about 5 ms of a warm install's 200, paid by
every process that links. The linker needs little of it: tasks handed to
a few long-lived threads, and results to wait for, cancel before they
start, or set from a helper process's reader thread. ``Promise`` and
``Workers`` are that much, with ``concurrent.futures``'s meanings.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from queue import SimpleQueue
from typing import Generic, TypeVar

__all__ = ["Cancelled", "Promise", "Workers"]

T = TypeVar("T")
A = TypeVar("A")

_PENDING, _RUNNING, _CANCELLED, _FINISHED = range(4)


class Cancelled(Exception):
    """What ``Promise.result`` raises for a task cancelled before it started."""


class Promise(Generic[T]):
    """A task's result, set once (``concurrent.futures.Future``'s meanings
    for the members it shares)."""

    __slots__ = ("_error", "_event", "_lock", "_result", "_state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._state = _PENDING
        self._result: T | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """Finished, failed or cancelled."""
        return self._event.is_set()

    def result(self) -> T:
        """Wait for the task; its result, or raise its exception (``Cancelled``
        if it was cancelled)."""
        self._event.wait()
        if self._state == _CANCELLED:
            raise Cancelled
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def cancel(self) -> bool:
        """Cancel the task if it has not started; whether it is cancelled."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
                self._event.set()
            return self._state == _CANCELLED

    def start(self) -> bool:
        """Mark the task running; False if it was cancelled (do not run it)."""
        with self._lock:
            if self._state == _CANCELLED:
                return False
            self._state = _RUNNING
            return True

    def set_result(self, result: T) -> None:
        self._finish(result, None)

    def set_exception(self, error: BaseException) -> None:
        self._finish(None, error)

    def _finish(self, result: T | None, error: BaseException | None) -> None:
        with self._lock:
            if self._state in (_CANCELLED, _FINISHED):
                raise RuntimeError("a task's result is set once")
            self._result, self._error, self._state = result, error, _FINISHED
        self._event.set()


#: a task for a thread: its promise, the function and its arguments
_Item = tuple[Promise[object], Callable[..., object], tuple[object, ...]]


class Workers:
    """Up to ``count`` threads running submitted tasks in order, started as
    tasks arrive. The threads are daemon threads: at the interpreter's exit
    they are idle (every install waits for its tasks, and a rollback for
    those of a failed one), and a daemon thread is not joined there; a
    task still running then is abandoned, where ``ThreadPoolExecutor``'s
    exit hook would have waited for it."""

    def __init__(self, count: int, name: str = "pip-linkmode") -> None:
        self._count = count
        self._name = name
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, func: Callable[..., T], *args: object) -> Promise[T]:
        """Run ``func(*args)`` on a thread; its promise."""
        promise: Promise[T] = Promise()
        with self._lock:
            if self._closed:
                raise RuntimeError("these workers are shut down")
            if self._idle:
                self._idle -= 1  # (that thread takes this task)
            elif len(self._threads) < self._count:
                # started before the task is queued: a thread that cannot
                # start leaves no task behind for a later one to run unseen
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            self._queue.put((promise, func, args))  # type: ignore[arg-type]
        return promise

    def map(self, func: Callable[[A], T], items: Iterable[A]) -> Iterator[T]:
        """``func(item)`` for each item, on these threads; the results in
        order. At the first exception (or when the caller stops reading),
        the items not started yet are cancelled, as ``Executor.map`` does:
        a failed copy does not wait for every other copy before it is told."""
        promises = [self.submit(func, item) for item in items]
        try:
            for promise in promises:
                yield promise.result()
        finally:
            for promise in promises:
                promise.cancel()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            promise, func, args = item
            if promise.start():
                try:
                    result = func(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
                    promise.set_exception(exc)
                else:
                    promise.set_result(result)
            del item, promise, func, args  # (drop the task's references while idle)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Let the threads finish what was submitted, then end them."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
