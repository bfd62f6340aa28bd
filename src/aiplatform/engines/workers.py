"""A pool of worker processes for CPU-bound pure Python that holds the GIL.

Work such as a statsmodels fit or a scikit-learn search holds the GIL for seconds; on a thread of
the server it would stall every other engine (an LLM stream's tokens wait for the GIL). The pool
runs such calls in separate interpreters instead:

- each worker is a fresh ``python`` started by fork+exec (as multiprocessing's ``spawn`` does;
  never a bare ``fork`` of this multi-threaded process) that imports only what the calls need;
- a call names a module-level function ``fn(request) -> result`` whose request and result are
  msgspec types; the request and the result cross the pipe as msgspec (msgpack) bytes, decoded
  with the function's annotated types;
- one call at a time per worker, ``workers`` at once; waiting calls are bounded and have a
  deadline like every queue of an engine (:class:`~aiplatform.engines.backlog.Backlog`);
- a function that takes a second parameter gets a ``progress(fraction, stage)`` callback; its
  reports cross the pipe as they are made (at most ten a second) and reach the caller's
  ``progress`` handler while the call runs;
- a caller that leaves while its call runs (cancelled, its client gone) kills that worker, so no
  process keeps burning CPU for nobody; a worker that dies fails its call with a 500 in OpenAI's
  shape; either way the next call starts a fresh worker in its place.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
import os
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from functools import cache, partial
from subprocess import PIPE
from typing import Any, BinaryIO, TypeVar, get_type_hints

import anyio
import anyio.abc
import msgspec
from anyio.streams.buffered import BufferedByteReceiveStream

from aiplatform.engines.backlog import Backlog
from aiplatform.errors import (
    AIPlatformError,
    EngineUnavailableError,
    InternalError,
    error_for_status,
)

__all__ = ["ProgressHandler", "WorkerPool", "serve"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_HEADER = struct.Struct("!I")
_WORKER_COMMAND = "from aiplatform.engines.workers import serve; serve()"
#: How long a worker that is told to stop (its pipe closed) may take before it is killed.
_STOP_GRACE_S = 2.0
#: prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1
#: Shortest time between two progress reports a worker sends.
_PROGRESS_INTERVAL_S = 0.1


class _Call(msgspec.Struct, array_like=True):
    function: str
    request: bytes


class _Failure(msgspec.Struct, array_like=True):
    status: int
    message: str
    param: str | None = None
    code: str | None = None
    #: the worker's traceback of an unexpected exception, logged by the server
    trace: str | None = None


class _Progress(msgspec.Struct, array_like=True):
    fraction: float
    stage: str


class _Reply(msgspec.Struct, array_like=True):
    result: bytes | None = None
    failure: _Failure | None = None
    #: a report made while the call runs; more frames follow
    progress: _Progress | None = None


#: What the caller of a call with progress hears: ``(fraction 0..1, stage)``.
ProgressHandler = Callable[[float, str], None]


class _WorkerDiedError(Exception):
    pass


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self._send = process.stdin
        self._receive = BufferedByteReceiveStream(process.stdout)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def call(self, frame: bytes, progress: ProgressHandler | None) -> _Reply:
        """Send a call and read its frames until the final one (reports go to ``progress``)."""
        try:
            await self._send.send(_HEADER.pack(len(frame)) + frame)
            while True:
                (size,) = _HEADER.unpack(await self._receive.receive_exactly(_HEADER.size))
                reply = msgspec.msgpack.decode(
                    await self._receive.receive_exactly(size), type=_Reply
                )
                if reply.progress is None:
                    return reply
                if progress is not None:
                    progress(reply.progress.fraction, reply.progress.stage)
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            raise _WorkerDiedError from None

    async def stop(self, *, kill: bool) -> int | None:
        """End the process (at once when ``kill``; else close its pipe and let it exit) and
        reap it. Shielded: it also runs while its caller is being cancelled."""
        with anyio.CancelScope(shield=True):
            if kill and self.alive:
                self.process.kill()
            with contextlib.suppress(anyio.BrokenResourceError, OSError):
                await self._send.aclose()
            with anyio.move_on_after(_STOP_GRACE_S):
                await self.process.wait()
            if self.alive:
                self.process.kill()
            await self.process.aclose()
        return self.process.returncode


class WorkerPool:
    """``workers`` processes that run typed calls, one each at a time, behind a bounded queue."""

    def __init__(
        self, label: str, *, workers: int, max_queue: int, queue_timeout_s: float | None
    ) -> None:
        self.backlog = Backlog(
            label, workers=workers, max_queue=max_queue, queue_timeout_s=queue_timeout_s
        )
        self._workers = workers
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._slots: anyio.Semaphore | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        return self.backlog.queued

    @property
    def running(self) -> int:
        return self.backlog.running

    @property
    def pids(self) -> list[int]:
        """The worker processes alive now (idle or busy)."""
        return [worker.pid for worker in (*self._idle, *self._busy) if worker.alive]

    async def start(self) -> None:
        """Start every worker, so the first calls do not wait for an interpreter to start."""
        self._slots = anyio.Semaphore(self._workers)
        self._closed = False
        for _ in range(self._workers):
            self._idle.append(await _spawn())

    async def close(self) -> None:
        """Stop every worker; calls still running or waiting fail with 503, and none starts a
        worker again."""
        self._slots = None
        self._closed = True
        idle, busy = list(self._idle), list(self._busy)
        self._idle.clear()
        async with anyio.create_task_group() as task_group:
            for worker in idle:
                task_group.start_soon(partial(worker.stop, kill=False))
            for worker in busy:
                task_group.start_soon(partial(worker.stop, kill=True))

    async def call(
        self,
        fn: Callable[[Req], Resp] | Callable[[Req, ProgressHandler], Resp],
        request: Req,
        *,
        progress: ProgressHandler | None = None,
    ) -> Resp:
        """Run ``fn(request)`` in a worker process and return its result.

        ``fn`` must be a module-level function whose parameter and return annotations are
        types msgspec encodes (Structs, lists, numbers ...). One that takes a second parameter
        is called with a progress callback, whose reports reach ``progress`` (on the event
        loop: it must not block).
        """
        name, result_type = _describe(fn)
        frame = msgspec.msgpack.encode(
            _Call(function=name, request=msgspec.msgpack.encode(request))
        )
        slots = self._slots
        if slots is None:
            raise EngineUnavailableError(f"{self.backlog.label} is not running.")
        ticket = self.backlog.admit()
        try:
            await self._acquire(slots, ticket.remaining_s())
        except TimeoutError:
            self.backlog.expire(ticket)
            raise self.backlog.timeout_error() from None
        except BaseException:
            self.backlog.drop(ticket)
            raise
        try:
            if not self.backlog.start(ticket):
                raise self.backlog.timeout_error()
            reply = await self._run(frame, name, progress)
        finally:
            self.backlog.finish(ticket)
            slots.release()
        if reply.failure is not None:
            raise _rebuild(reply.failure, name)
        assert reply.result is not None
        result: Resp = msgspec.msgpack.decode(reply.result, type=result_type)
        return result

    @staticmethod
    async def _acquire(slots: anyio.Semaphore, timeout_s: float | None) -> None:
        if timeout_s is None:
            await slots.acquire()
            return
        with anyio.fail_after(timeout_s):
            await slots.acquire()

    async def _run(self, frame: bytes, name: str, progress: ProgressHandler | None) -> _Reply:
        worker = await self._take()
        self._busy.add(worker)
        try:
            reply = await worker.call(frame, progress)
        except _WorkerDiedError:
            self._busy.discard(worker)
            code = await worker.stop(kill=True)
            if self._closed:
                raise self._closed_error() from None
            logger.error("worker process %d died running %s (exit code %s)", worker.pid, name, code)
            raise InternalError(
                f"The worker process running this call exited unexpectedly (exit code {code}); "
                "it has been replaced.",
                code="worker_died",
            ) from None
        except BaseException:
            # Cancelled mid-call: the worker is busy with work nobody waits for. Stop it.
            self._busy.discard(worker)
            await worker.stop(kill=True)
            raise
        self._busy.discard(worker)
        if self._closed:
            await worker.stop(kill=False)
        else:
            self._idle.append(worker)
        return reply

    def _closed_error(self) -> EngineUnavailableError:
        return EngineUnavailableError(f"{self.backlog.label} is shutting down.")

    async def _take(self) -> _Worker:
        """An idle worker that is alive, or a fresh one in place of one that is gone."""
        if self._closed:
            raise self._closed_error()
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            await worker.stop(kill=True)
        return await _spawn()


async def _spawn() -> _Worker:
    # The worker finds what this process finds: the same import path.
    path = [entry or os.getcwd() for entry in sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    # The server's pid travels as an argument: the worker checks it is still its parent.
    command = [sys.executable, "-c", _WORKER_COMMAND, str(os.getpid())]
    process = await anyio.open_process(command, stdin=PIPE, stdout=PIPE, stderr=None, env=env)
    return _Worker(process)


@cache
def _describe(fn: Callable[..., Any]) -> tuple[str, Any]:
    """``fn``'s importable name and its result type; refuses what a worker cannot import."""
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", "")
    if not qualname or "<" in qualname or module in ("", "__main__"):
        raise TypeError(
            f"{fn!r} cannot run in a worker process: pass a module-level function of an "
            "importable module"
        )
    return f"{module}:{qualname}", get_type_hints(fn).get("return", Any)


def _rebuild(failure: _Failure, name: str) -> AIPlatformError:
    if failure.trace is not None:
        logger.error("worker call %s failed:\n%s", name, failure.trace)
    return error_for_status(failure.status, failure.message, param=failure.param, code=failure.code)


# -- the worker process --------------------------------------------------------------------------


def serve() -> None:
    """The worker process's main loop: answer calls until the server closes the pipe."""
    # The pipe is fd 0/1 of this process; called code that prints goes to stderr instead.
    channel_in = os.fdopen(os.dup(0), "rb", buffering=0)
    channel_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    # Ctrl-C reaches the whole process group; the server stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()

    def send(reply: _Reply) -> None:
        data = msgspec.msgpack.encode(reply)
        channel_out.write(_HEADER.pack(len(data)) + data)
        channel_out.flush()

    while True:
        frame = _read_frame(channel_in)
        if frame is None:
            return
        send(_answer(frame, _Reporter(send)))


class _Reporter:
    """The progress callback a call gets: sends reports, at most ten a second (the last one
    before the result may be dropped; the result says it all)."""

    def __init__(self, send: Callable[[_Reply], None]) -> None:
        self._send = send
        self._last = 0.0

    def __call__(self, fraction: float, stage: str) -> None:
        now = time.monotonic()
        if now - self._last < _PROGRESS_INTERVAL_S:
            return
        self._last = now
        value = min(max(float(fraction), 0.0), 1.0)
        self._send(_Reply(progress=_Progress(fraction=value, stage=str(stage))))


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the server dies (even by SIGKILL), so
    no computation keeps burning CPU for a server that is gone. Elsewhere a worker notices
    when its pipe closes, after its current call."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    server = sys.argv[1] if len(sys.argv) > 1 else ""
    if server.isdigit() and os.getppid() != int(server):  # it died before prctl took effect
        os._exit(1)


def _read_frame(channel: BinaryIO) -> bytes | None:
    header = _read_exactly(channel, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    return _read_exactly(channel, size)


def _read_exactly(channel: BinaryIO, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = channel.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _answer(frame: bytes, report: ProgressHandler) -> _Reply:
    call = msgspec.msgpack.decode(frame, type=_Call)
    try:
        fn, request_type, takes_progress = _resolve(call.function)
        request = msgspec.msgpack.decode(call.request, type=request_type)
        result = fn(request, report) if takes_progress else fn(request)
        return _Reply(result=msgspec.msgpack.encode(result))
    except AIPlatformError as exc:
        return _Reply(
            failure=_Failure(
                status=exc.status_code, message=exc.message, param=exc.param, code=exc.code
            )
        )
    except Exception:
        return _Reply(
            failure=_Failure(
                status=500,
                message="The worker process failed on this call; it has been logged.",
                code="worker_error",
                trace=traceback.format_exc(),
            )
        )


@cache
def _resolve(name: str) -> tuple[Callable[..., Any], Any, bool]:
    """The function a call names, the type its request decodes to, and whether it takes a
    progress callback."""
    module_name, qualname = name.split(":", 1)
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    parameters = list(inspect.signature(target).parameters)
    if len(parameters) not in (1, 2):
        raise TypeError(f"{name} must take the request and, optionally, a progress callback")
    request_type = get_type_hints(target).get(parameters[0], Any)
    return target, request_type, len(parameters) == 2
