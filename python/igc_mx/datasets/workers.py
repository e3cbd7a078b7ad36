"""An ordered parallel map over worker processes, for encoding, ``verify`` and ``stats``.

Why not ``multiprocessing.Pool``: its workers share locked queues, and when one dies (the
out-of-memory killer, say) its task is lost and ``imap`` waits for it forever; its
``terminate()`` also relies on SIGTERM killing workers that wait on a lock the parent
holds. Here each worker has its own pair of pipes, task k goes to worker k mod n and
one task at a time is in flight per worker, so results come back in order without
reordering, a dead worker is seen at once (its process sentinel), and stopping is a
message or, after an error or a signal, SIGKILL. Workers start with the stop signals
blocked and then give them their default actions (``_process.starting_workers``).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

from .. import NO_MXNET_ENV
from .._environ import environ
from .._process import become_worker, starting_workers
from ..recordio import UserError

_END = object()
JOIN_SECONDS = 10   # a worker that does not end after its stop message is killed


class WorkerDied(UserError):
    """A worker process ended before it returned a result."""


def default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def pool_context() -> multiprocessing.context.BaseContext:
    """fork where available (cheap), spawn once MXNet is loaded (its engine is fork-hostile)."""
    methods = multiprocessing.get_all_start_methods()
    fork = "fork" in methods and "mxnet" not in sys.modules
    return multiprocessing.get_context("fork" if fork else "spawn")


def serve(parent_pid: int, tasks: Connection, results: Connection, func: Callable,
          initializer: Callable | None, initargs: tuple) -> None:
    """A worker: ``func`` of every task it receives, sent back as (True, result), or
    (False, exception) for an exception, until the stop message (None)."""
    become_worker(parent_pid)
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            reply = (True, func(task))
        except Exception as e:  # noqa: BLE001 - raised again in the parent
            reply = (False, e)
        try:
            results.send(reply)
        except Exception as e:  # noqa: BLE001 - an exception that does not pickle
            results.send((False, RuntimeError(f"{type(e).__name__}: {e}")))


@dataclass
class Worker:
    process: multiprocessing.process.BaseProcess
    tasks: Connection
    results: Connection


class OrderedPool:
    """``count`` worker processes running ``func``; ``imap`` yields results in task order.
    Several ``imap`` may follow each other (the splits of a build), not overlap."""

    def __init__(self, func: Callable, count: int, initializer: Callable | None = None,
                 initargs: tuple = ()):
        context = pool_context()
        self.workers: list[Worker] = []
        self.in_flight = 0
        self.stale = deque()   # workers owing the result of an imap that ended early
        try:
            # Spawned workers import igc_mx; they never use MXNet, so they start without
            # importing it (NO_MXNET_ENV, see igc_mx/__init__.py).
            with environ(**{NO_MXNET_ENV: "1"}), starting_workers():
                for _ in range(count):
                    self.workers.append(self._start(context, func, initializer, initargs))
        except BaseException:
            self.kill()
            raise

    @staticmethod
    def _start(context, func, initializer, initargs) -> Worker:
        task_reader, task_writer = context.Pipe(duplex=False)
        result_reader, result_writer = context.Pipe(duplex=False)
        process = context.Process(target=serve, daemon=True, args=(
            os.getpid(), task_reader, result_writer, func, initializer, initargs))
        process.start()
        # the worker's ends: closed here, so that its death closes the result pipe
        task_reader.close()
        result_writer.close()
        return Worker(process, task_writer, result_reader)

    def imap(self, tasks: Iterable) -> Iterator:
        while self.stale:
            self._discard(self.stale.popleft())
        tasks = iter(tasks)
        turns = deque()   # the worker of every task in flight, in task order
        try:
            for worker in self.workers:
                if not self._send(worker, tasks):
                    break
                turns.append(worker)
            while turns:
                worker = turns.popleft()
                result = self._receive(worker)
                if self._send(worker, tasks):
                    turns.append(worker)
                yield result
        finally:
            self.stale.extend(turns)

    def _discard(self, worker: Worker) -> None:
        """Receive and drop a result owed to an imap that ended early (an exception, or
        a consumer that stopped); a worker that died still raises."""
        try:
            self._receive(worker)
        except WorkerDied:
            raise
        except Exception:  # noqa: BLE001 - the abandoned imap's, not this one's
            pass

    def _send(self, worker: Worker, tasks: Iterator) -> bool:
        task = next(tasks, _END)
        if task is _END:
            return False
        try:
            worker.tasks.send(task)
        except OSError:   # the worker is gone: its pipe is broken
            raise self._died(worker) from None
        self.in_flight += 1
        return True

    def _receive(self, worker: Worker):
        ready = wait([worker.results, worker.process.sentinel])
        if worker.results not in ready:
            raise self._died(worker)
        try:
            ok, value = worker.results.recv()
        except (EOFError, OSError):
            raise self._died(worker) from None
        self.in_flight -= 1
        if not ok:
            raise value
        return value

    @staticmethod
    def _died(worker: Worker) -> WorkerDied:
        worker.process.join(JOIN_SECONDS)
        code, pid = worker.process.exitcode, worker.process.pid
        if code is not None and code < 0:
            return WorkerDied(f"worker process {pid} was killed by {signal.Signals(-code).name}")
        if code is not None:
            return WorkerDied(f"worker process {pid} exited with status {code}")
        return WorkerDied(f"worker process {pid} closed its pipe without exiting")

    def close(self) -> None:
        """Stop the workers: a stop message when they are idle, SIGKILL otherwise (also
        for one that does not end, or when a signal interrupts the wait)."""
        try:
            if not self.in_flight:
                for worker in self.workers:
                    with contextlib.suppress(OSError):   # a worker that is gone needs none
                        worker.tasks.send(None)
                for worker in self.workers:
                    worker.process.join(JOIN_SECONDS)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill the workers still running and wait for them."""
        for worker in self.workers:
            if worker.process.exitcode is None:
                worker.process.kill()
        for worker in self.workers:
            worker.process.join()
            worker.tasks.close()
            worker.results.close()


class InProcess:
    """The pool of a single worker: ``func`` runs in this process."""

    def __init__(self, func: Callable):
        self.func = func

    def imap(self, tasks: Iterable) -> Iterator:
        return map(self.func, tasks)


@contextmanager
def worker_pool(func: Callable, workers: int, initializer: Callable | None = None,
                initargs: tuple = ()) -> Iterator[OrderedPool | InProcess]:
    """A pool whose ``imap(tasks)`` maps ``func`` over tasks in order, in ``workers``
    processes (in this one when 1); one ``imap`` at a time, each consumed to its end. The
    workers are stopped when the block ends, and killed when it raises."""
    if workers <= 1:
        if initializer:
            initializer(*initargs)
        yield InProcess(func)
        return
    pool = OrderedPool(func, workers, initializer, initargs)
    try:
        yield pool
    except BaseException:
        pool.kill()
        raise
    pool.close()
