"""Runs one generation on an engine session, synchronously or on a worker
thread, with MediaPipe's delivery rules: partial results in order, the first
with its leading whitespace stripped, empty ones skipped, the last call with
done=True; every error goes to the error listener and to the returned future;
the engine's one-generation-at-a-time lock is always released.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from ..engine.base import Engine, Session

log = logging.getLogger("pocketlm")

ProgressListener = Callable[[str, bool], None]
ErrorListener = Callable[[BaseException], None]


class IllegalStateError(RuntimeError):
    """A call the object's state does not allow (Android's IllegalStateException):
    generating while another generation runs, or using a closed object."""


class GenerationFuture(Future):
    """The handle generateResponseAsync returns: a concurrent.futures.Future
    whose result is the full response text. cancel() also stops a running
    generation (within one decode step); the result is then the text so far."""

    def __init__(self):
        super().__init__()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def cancel(self) -> bool:
        self.stop.set()
        return super().cancel()

    def join(self, timeout: float | None = None) -> None:
        """Waits until the worker thread has finished (listeners included)."""
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)


class _Stripper:
    """Strips leading whitespace until the first non-empty piece (Android's
    stripLeadingWhitespace on the first output)."""

    def __init__(self):
        self.started = False

    def __call__(self, piece: str) -> str:
        if not self.started:
            piece = piece.lstrip()
            self.started = bool(piece)
        return piece


def acquire(engine: Engine) -> None:
    if not engine.busy.acquire(blocking=False):
        raise IllegalStateError("Previous invocation still processing. Wait for done=true.")


def generate_sync(engine: Engine, session: Session, release: bool = False) -> str:
    """release: the session is an implicit one, freed when the call ends."""
    acquire(engine)
    try:
        strip = _Stripper()
        return "".join(strip(p) for p in _pieces(session))
    finally:
        engine.busy.release()
        if release:
            session.release()


def _pieces(session: Session) -> list[str]:
    out: list[str] = []
    session.generate(out.append)
    return out


def _report(error_listener: ErrorListener | None, error: BaseException) -> None:
    if error_listener is None:
        return
    try:
        error_listener(error)
    except Exception:  # an error listener that fails must not hide the first error or kill the worker
        log.exception("pocketlm: the error listener raised while reporting %r", error)


def generate_async(engine: Engine, session: Session, listener: ProgressListener | None,
                   error_listener: ErrorListener | None, on_finish: Callable[[], None] | None = None,
                   on_start: Callable[[GenerationFuture], None] | None = None) -> GenerationFuture:
    """Starts the generation on a worker thread and returns its future. The
    engine lock is taken here, in the caller's thread, so a second call while
    this one runs fails at once with IllegalStateError. on_start gets the
    future before the worker starts, so a listener that cancels from its first
    call finds it."""
    acquire(engine)
    future = GenerationFuture()
    future.set_running_or_notify_cancel()
    strip = _Stripper()
    parts: list[str] = []

    def emit(piece: str) -> None:
        piece = strip(piece)
        if piece:
            parts.append(piece)
            if listener is not None:
                listener(piece, False)

    def work() -> None:
        released = False
        try:
            session.generate(emit, future.stop)
            engine.busy.release()  # released before done=True, so the listener may start the next call
            released = True
            if on_finish is not None:
                on_finish()
            if listener is not None:
                listener("", True)
        except BaseException as e:  # noqa: BLE001 - every error reaches the listener and the future
            if not released:
                engine.busy.release()
                if on_finish is not None:
                    on_finish()
            _report(error_listener, e)
            future.set_exception(e)
            return
        future.set_result("".join(parts))

    future.thread = threading.Thread(target=work, name="pocketlm-generate", daemon=True)
    engine.running = future
    if on_start is not None:
        on_start(future)
    try:
        future.thread.start()
    except BaseException:
        engine.busy.release()
        raise
    return future
