"""Continuous batching: one worker thread owns the decode loop; the asyncio side submits and awaits.

Why: on a CPU (and far more on a GPU) one forward pass over 16 rows costs little more
than over one, so writers who ask at the same time should share passes. A request waits
in a bounded queue; when the model is idle the worker waits `batch_wait_ms` for company,
then prefills everyone waiting (up to `max_batch`). While a batch runs, newcomers join at
the next step boundary and finished, cancelled or expired rows leave it at once.

    scheduler = Scheduler(generator, max_queue=64, max_batch=16, batch_wait_ms=20, queue_timeout_s=300)
    ticket = scheduler.submit(prompt_ids, params, stream=True)   # QueueFullError when full
    async for text in ticket.stream(): ...                       # or: result = await ticket.wait()
    ticket.cancel()                                               # the client went away

A failed forward pass fails the rows that were in it, and only those; the next batch
starts from a clean cache.

Time limits: a request may wait in the queue for `queue_timeout_s`; once it runs, it fails
only when the model produces nothing for it for `stall_timeout_s` (a forward pass stuck on
a sick machine). There is no limit on total time: a long scene whose tokens keep coming is
never cut off (max_tokens bounds its length).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import AsyncIterator, Callable

from backend.detokenize import IncrementalText
from backend.engine import BatchEngine, Emitted, Row, is_peft_model
from backend.generator import GenerationResult, PromptTooLongError
from backend.sampling import SamplingParams

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 64
DEFAULT_MAX_BATCH = 16
DEFAULT_BATCH_WAIT_MS = 20.0
DEFAULT_QUEUE_TIMEOUT_S = 300.0
DEFAULT_STALL_TIMEOUT_S = 120.0
_RATE_WINDOW_S = 10.0
_RECHECK_S = 1.0


class QueueFullError(RuntimeError):
    def __init__(self, depth: int, retry_after_s: int) -> None:
        super().__init__(f"The generation queue is full ({depth} waiting). Retry in about {retry_after_s} s.")
        self.retry_after_s = retry_after_s


class RequestTimeoutError(TimeoutError):
    """The request waited in the queue past queue_timeout_s, or its row made no progress for
    stall_timeout_s; it no longer uses the model."""


class RequestCancelledError(RuntimeError):
    """The client went away; the row left the batch."""


class GenerationFailedError(RuntimeError):
    """A forward pass failed; every row in it fails with this."""


@dataclass
class SchedulerStats:
    """Counters for tests and metrics; written by the worker (and cancel()), read anywhere."""

    submitted: int = 0
    completed: int = 0
    rejected: int = 0
    cancelled: int = 0
    timed_out: int = 0
    failed: int = 0
    prefill_batches: int = 0  # groups of requests admitted together (one prefill pass each)
    decode_steps: int = 0
    tokens: int = 0
    largest_batch: int = 0


class Ticket:
    """The submitter's handle on one request. Await it from the event loop it was submitted on."""

    _ids = itertools.count(1)

    def __init__(self, row: Row, *, queue_timeout_s: float, stall_timeout_s: float, stream: bool,
                 loop: asyncio.AbstractEventLoop | None, decode: Callable[[list[int]], str]) -> None:
        self.id = next(self._ids)
        self.row = row
        self.submitted_at = time.monotonic()
        self.queue_deadline = self.submitted_at + queue_timeout_s
        self.stall_timeout_s = stall_timeout_s
        # Set by the worker: when the row joined the batch, and when it last got a token.
        self.admitted = False
        self.last_progress = self.submitted_at
        self.result: GenerationResult | None = None
        self.error: BaseException | None = None
        self.abandoned: str | None = None  # "cancelled" or "timeout", set by the waiting side
        self.text = IncrementalText(decode) if stream else None
        self._loop = loop
        self._events: asyncio.Queue | None = asyncio.Queue() if loop else None
        self._done = threading.Event()
        self._settle_lock = threading.Lock()
        self._on_abandon: Callable[[Ticket], None] = lambda ticket: None

    # -- the waiting side -------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop generating for this request; the row leaves the batch at the next step."""
        self._abandon("cancelled")

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def stream(self) -> AsyncIterator[str]:
        """Stable text deltas as tokens arrive (submit with stream=True); raises the request's error."""
        while True:
            kind, text = await self.next_event()
            if kind == "done":
                break
            yield text
        if self.error:
            raise self.error

    async def wait(self) -> GenerationResult:
        while (await self.next_event())[0] != "done":
            pass
        if self.error:
            raise self.error
        return self.result

    def wait_blocking(self) -> GenerationResult:
        """For callers outside an event loop."""
        while not self._done.wait(max(0.0, self.time_left())):
            if self.time_left() <= 0:
                self._expire()
        if self.error:
            raise self.error
        return self.result

    async def next_event(self, *, quiet_after_s: float | None = None) -> tuple[str, str]:
        """("text", delta) (streamed tickets), ("done", ""), or ("quiet", "") when nothing came for
        quiet_after_s (for a caller that reports the queue or keeps a connection alive meanwhile).

        Raises RequestTimeoutError past the queue or stall limit: the worker checks the queue's
        between steps, and this side guards against a worker stuck inside one forward pass.
        """
        quiet_at = None if quiet_after_s is None else time.monotonic() + quiet_after_s
        while True:
            # Look again at least once a second: the limit changes when the row joins the batch.
            wait = min(self.time_left(), _RECHECK_S)
            if quiet_at is not None:
                wait = min(wait, quiet_at - time.monotonic())
            try:
                return await asyncio.wait_for(self._events.get(), max(0.0, wait))
            except asyncio.TimeoutError:
                if self.time_left() <= 0:
                    self._expire()
                if quiet_at is not None and time.monotonic() >= quiet_at:
                    return ("quiet", "")
                # else the row made progress meanwhile (a non-streamed row sends no text): wait on

    def time_left(self) -> float:
        """Seconds until this request times out: in the queue, until queue_timeout_s from
        submission; in the batch, until stall_timeout_s after its last token."""
        if self.admitted:
            return self.last_progress + self.stall_timeout_s - time.monotonic()
        return self.queue_deadline - time.monotonic()

    def timeout_message(self) -> str:
        if self.admitted:
            return f"the model produced nothing for this request for {self.stall_timeout_s:g} s"
        waited = time.monotonic() - self.submitted_at
        return f"the request waited {waited:.0f} s in the queue without a place in the batch"

    def _expire(self) -> None:
        message = self.timeout_message()
        self._abandon("timeout")
        raise RequestTimeoutError(message)

    def _abandon(self, reason: str) -> None:
        if self.abandoned is None and not self.done:
            self.abandoned = reason
            self._on_abandon(self)

    # -- the worker side --------------------------------------------------------------------

    def _push_text(self, text: str) -> None:
        if text:
            self._send(("text", text))

    def _settle(self, *, result: GenerationResult | None = None, error: BaseException | None = None) -> bool:
        """Record the outcome once; False when it was already settled."""
        with self._settle_lock:
            if self._done.is_set():
                return False
            self.result, self.error = result, error
            self._done.set()
        self._send(("done", ""))
        return True

    def _send(self, event: tuple[str, str]) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the submitter's loop is closed: nobody is listening any more
            self.abandoned = self.abandoned or "cancelled"


class Scheduler:
    def __init__(self, generator, *, max_queue: int = DEFAULT_MAX_QUEUE, max_batch: int = DEFAULT_MAX_BATCH,
                 batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
                 queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S,
                 stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S, jump_forward: bool = True,
                 on_forward: Callable[[int, int, float], None] | None = None) -> None:
        """on_forward(rows, new_tokens, seconds) is called by the worker after every forward pass."""
        if max_queue < 1 or max_batch < 1 or batch_wait_ms < 0 or queue_timeout_s <= 0 or stall_timeout_s <= 0:
            raise ValueError("max_queue and max_batch must be >= 1, batch_wait_ms >= 0, the timeouts > 0")
        self.generator = generator
        self.max_queue, self.max_batch = max_queue, max_batch
        self.batch_wait_s = batch_wait_ms / 1000
        self.queue_timeout_s, self.stall_timeout_s = queue_timeout_s, stall_timeout_s
        self.stats = SchedulerStats()
        self.engine = BatchEngine(generator, jump_forward=jump_forward)
        self._on_forward = on_forward or (lambda rows, tokens, seconds: None)
        self._pending: deque[Ticket] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) per forward pass, for tokens/s
        self._seconds_per_request = 5.0  # running estimate, for Retry-After
        self._thread = threading.Thread(target=self._run, name="writersroom-scheduler", daemon=True)
        self._thread.start()

    # -- the submitting side ------------------------------------------------------------------

    def submit(self, prompt_ids: list[int], params: SamplingParams, *, adapter: str | None = None,
               stream: bool = False) -> Ticket:
        """Queue a request. From a coroutine the ticket is awaitable; elsewhere use wait_blocking().

        Raises QueueFullError (max_queue waiting), PromptTooLongError, or ValueError for an
        adapter on a model without LoRA adapters."""
        if len(prompt_ids) + params.max_tokens > self.generator.context_window:
            raise PromptTooLongError(f"prompt of {len(prompt_ids)} tokens plus max_tokens {params.max_tokens} "
                                     f"exceeds the context window of {self.generator.context_window} tokens")
        if adapter is not None and not is_peft_model(self.generator.model):
            raise ValueError(f"adapter {adapter!r} asked for, but the model has no LoRA adapters loaded")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        ticket = Ticket(Row(list(prompt_ids), params, adapter), queue_timeout_s=self.queue_timeout_s,
                        stall_timeout_s=self.stall_timeout_s, stream=stream, loop=loop, decode=self.generator.decode)
        ticket.row.owner = ticket
        ticket._on_abandon = self._withdraw
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            if len(self._pending) >= self.max_queue:
                self.stats.rejected += 1
                raise QueueFullError(len(self._pending), self.retry_after_s())
            self._pending.append(ticket)
            self.stats.submitted += 1
            self._cond.notify()
        return ticket

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    def position(self, ticket: Ticket) -> int:
        """Where ``ticket`` stands in the queue: 1 when it is next, 0 once it runs (or ended)."""
        with self._cond:
            try:
                return self._pending.index(ticket) + 1
            except ValueError:
                return 0

    @property
    def running(self) -> int:
        return len(self.engine.rows)

    @property
    def closed(self) -> bool:
        return self._closed

    def retry_after_s(self) -> int:
        """A rough wait until a queue slot frees: the queue drains max_batch requests at a time."""
        rounds = max(1, math.ceil(len(self._pending) / self.max_batch))
        return int(min(60, max(1, math.ceil(rounds * self._seconds_per_request))))

    def tokens_per_second(self) -> float:
        now = time.monotonic()
        recent = [(at, tokens) for at, tokens in list(self._recent) if now - at <= _RATE_WINDOW_S]
        return sum(tokens for _, tokens in recent) / _RATE_WINDOW_S if recent else 0.0

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker; requests still waiting fail."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        while self._pending:
            self._pending.popleft()._settle(error=RuntimeError("the backend is shutting down"))

    def _withdraw(self, ticket: Ticket) -> None:
        """A queued ticket that is cancelled or expired leaves the queue now; a running one at the next step."""
        with self._cond:
            if ticket in self._pending:
                self._pending.remove(ticket)
                self._finish_abandoned(ticket)
            self._cond.notify()

    # -- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            newcomers = self._take_newcomers()
            if newcomers is None:
                return
            self._drop_abandoned()
            if newcomers:
                self.stats.prefill_batches += 1
                self._forward(lambda: self.engine.admit([ticket.row for ticket in newcomers]), newcomers,
                              reset_on_error=False)
            if self.engine.rows:
                self.stats.decode_steps += 1
                self._forward(self.engine.step, [row.owner for row in self.engine.rows], reset_on_error=True)

    def _take_newcomers(self) -> list[Ticket] | None:
        """Requests to admit now: blocks while idle, and lets a fresh batch gather for batch_wait_ms."""
        with self._cond:
            while not self._pending and not self.engine.rows and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            if not self.engine.rows and self.batch_wait_s:
                gather_until = time.monotonic() + self.batch_wait_s
                while len(self._pending) < self.max_batch and not self._closed:
                    left = gather_until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            newcomers = []
            while self._pending and len(newcomers) + len(self.engine.rows) < self.max_batch:
                ticket = self._pending.popleft()
                if time.monotonic() > ticket.queue_deadline:
                    ticket.abandoned = ticket.abandoned or "timeout"
                if ticket.abandoned:
                    self._finish_abandoned(ticket)
                else:
                    ticket.last_progress, ticket.admitted = time.monotonic(), True
                    newcomers.append(ticket)
            self._expire_queued()
            return newcomers

    def _expire_queued(self) -> None:
        """Requests that waited past queue_timeout_s leave the queue (caller holds the lock)."""
        now = time.monotonic()
        for ticket in [ticket for ticket in self._pending if now > ticket.queue_deadline]:
            self._pending.remove(ticket)
            ticket.abandoned = ticket.abandoned or "timeout"
            self._finish_abandoned(ticket)

    def _drop_abandoned(self) -> None:
        # No time limit here: a row in the batch gets a token every step (see the module's docstring).
        leaving = [row for row in self.engine.rows if row.owner.abandoned]
        if leaving:
            self.engine.drop(leaving)
            with self._cond:  # cancel() may be counting at the same moment
                for row in leaving:
                    self._finish_abandoned(row.owner)

    def _finish_abandoned(self, ticket: Ticket) -> None:
        timed_out = ticket.abandoned == "timeout"
        error = RequestTimeoutError(ticket.timeout_message()) if timed_out else RequestCancelledError("cancelled")
        if ticket._settle(error=error):
            if timed_out:
                self.stats.timed_out += 1
            else:
                self.stats.cancelled += 1

    def _forward(self, action: Callable[[], list[Emitted]], tickets: list[Ticket], *, reset_on_error: bool) -> None:
        started = time.perf_counter()
        try:
            emitted = action()
        except Exception as exc:  # fail this batch's rows; the worker and the queue live on
            log.exception("forward pass over %d rows failed", len(tickets))
            if reset_on_error:
                self.engine.reset()
            for ticket in tickets:
                if ticket._settle(error=GenerationFailedError(f"Generation failed: {type(exc).__name__}")):
                    self.stats.failed += 1
            return
        seconds = time.perf_counter() - started
        self.stats.tokens += len(emitted)
        self.stats.largest_batch = max(self.stats.largest_batch, len(tickets))
        self._recent.append((time.monotonic(), len(emitted)))
        while self._recent and time.monotonic() - self._recent[0][0] > _RATE_WINDOW_S:
            self._recent.popleft()
        for item in emitted:
            self._deliver(item)
        self._on_forward(len(tickets), len(emitted), seconds)

    def _deliver(self, item: Emitted) -> None:
        ticket: Ticket = item.row.owner
        ticket.last_progress = time.monotonic()
        if ticket.text is not None and not item.finish_reason:
            ticket._push_text(ticket.text.update(item.row.generated))
        if not item.finish_reason:
            return
        result = self.generator.result(item.row, item.finish_reason)
        if ticket.text is not None:
            ticket._push_text(ticket.text.finish(_text_ids(item.row, self.generator.stop_ids)))
            result = replace(result, text=ticket.text.sent)
        if ticket._settle(result=result):
            self.stats.completed += 1
            elapsed = time.monotonic() - ticket.submitted_at
            self._seconds_per_request = 0.8 * self._seconds_per_request + 0.2 * elapsed


def _text_ids(row: Row, stop_ids: frozenset[int]) -> list[int]:
    return row.generated[:-1] if row.generated and row.generated[-1] in stop_ids else row.generated
