"""The dispatcher: turns run timelines into deliveries, and sends them in the background.

Two tasks, so the engine never waits on a receiver:

- the engine calls `_on_events` after each commit; it only marks the run and wakes the pump
  (no I/O, no allocation beyond a set insert);
- the pump reads the run's timeline from its cursor on, writes one delivery per message and
  target, and moves the cursor in the same transaction. Reading from the stored timeline
  rather than from what listeners were told means nothing is lost between a run's start and
  the recording of its targets, or while the service was down;
- the sender tries due deliveries, at most `Settings.publish_concurrency` at once and one at
  a time per target (oldest first), so each receiver sees a run's lifecycle in order. A
  failed attempt is tried again after an exponential backoff, until
  `Settings.publish_max_attempts`; then the delivery is recorded as failed with the error.

Deliveries are at least once: one in flight when the process stops is still pending, and is
sent again after a restart. Receivers drop repeats by delivery id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from conveyor.errors import RunNotFoundError
from conveyor.ids import new_id
from conveyor.publishing.messages import (
    cloud_event,
    lifecycle_message,
    matches,
    message_type,
    utc_now_iso,
)
from conveyor.publishing.outbox import NewDelivery, Outbox, Pending
from conveyor.publishing.secrets import SecretBox, SecretUnreadable
from conveyor.publishing.senders import DeliveryError, TopicSender, WebhookSender, encode
from conveyor.publishing.signing import EVENT_HEADER
from conveyor.publishing.specs import Target, WebhookSpec

if TYPE_CHECKING:
    from conveyor.backends.local import LocalBackend
    from conveyor.backends.local.store import Store
    from conveyor.config import Settings

log = structlog.get_logger("conveyor.publishing")

_PAGE = 500
_GATHER_SECONDS = 0.01
_RETRY_SECONDS = 1.0
_FINAL_RUN_STATUSES = frozenset({"completed", "failed", "cancelled", "timed_out"})


def backoff_seconds(attempt: int, settings: Settings) -> float:
    """The wait after failed attempt number `attempt` (1-based): doubling, capped."""
    wait = settings.publish_backoff_seconds * 2 ** (attempt - 1)
    return float(min(wait, settings.publish_max_backoff_seconds))


class Dispatcher:
    """Publishes the lifecycle of runs that asked for it."""

    def __init__(
        self,
        backend: LocalBackend,
        store: Store,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Make a dispatcher for `backend`'s runs, keeping its outbox in `store`."""
        self.backend = backend
        self.outbox = Outbox(store)
        self.settings = settings
        self._clock = clock
        self._watching: set[str] = set()
        self._dirty: set[str] = set()
        self._pump_wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._webhooks: WebhookSender | None = None
        self._topics: TopicSender | None = None
        self._box: SecretBox | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the tables, resume unfinished runs and pending deliveries, start the tasks."""
        if self._tasks:
            return
        self.outbox.migrate()
        self._box = SecretBox.from_settings(self.settings)
        self.outbox.seal_plain_secrets(self._box.seal)
        self._webhooks = WebhookSender(self.settings)
        self._topics = TopicSender(self.settings)
        # Run ids, not timeline entries: building entries for a listener costs the engine on
        # every commit, and the pump reads the timeline itself.
        self._unsubscribe = self.backend.subscribe(self._on_change)
        # Catch up on whatever happened while no dispatcher listened.
        self._watching = set(self.outbox.unfinished_runs())
        self._dirty = set(self._watching)
        self._tasks = [
            asyncio.create_task(self._pump(), name="conveyor-publish-pump"),
            asyncio.create_task(self._send(), name="conveyor-publish-send"),
        ]
        self._pump_wake.set()
        self._send_wake.set()

    async def stop(self) -> None:
        """Stop the tasks; deliveries in flight stay pending for the next start."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [*self._tasks, *self._inflight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._inflight.clear()
        for sender in (self._webhooks, self._topics):
            if sender is not None:
                await sender.aclose()
        self._webhooks = self._topics = None

    # ------------------------------------------------------------ runs

    def attach(self, run_id: str, topics: Sequence[str], webhooks: Sequence[WebhookSpec]) -> None:
        """Publish `run_id`'s lifecycle, from its start, to `topics` and `webhooks`.

        A run that has targets keeps them: starting again with the same idempotency key
        answers the first run, and changes nothing of it.
        """
        if self.outbox.targets_of(run_id):
            return
        targets = [Target(new_id(), run_id, i, "topic", topic) for i, topic in enumerate(topics)]
        targets += [
            Target(
                new_id(),
                run_id,
                i,
                "webhook",
                hook.url,
                self._secrets.seal(hook.secret.get_secret_value()),
                list(hook.events) if hook.events is not None else None,
            )
            for i, hook in enumerate(webhooks)
        ]
        self._publish_to(run_id, targets)

    def inherit(self, run_id: str, from_run_id: str) -> None:
        """Publish `run_id`'s lifecycle where `from_run_id`'s goes (a retry's, its run's)."""
        targets = [
            replace(target, id=new_id(), run_id=run_id)
            for target in self.outbox.targets_of(from_run_id)
        ]
        self._publish_to(run_id, targets)

    def _publish_to(self, run_id: str, targets: list[Target]) -> None:
        """Store `targets` and start publishing `run_id`'s timeline to them."""
        if not targets:
            return
        self.outbox.add_targets(targets, self._clock())
        self._watching.add(run_id)
        self._dirty.add(run_id)
        self._pump_wake.set()

    def _on_change(self, run_id: str) -> None:
        # Called by the engine after a commit: keep it to a set lookup.
        if run_id in self._watching:
            self._dirty.add(run_id)
            self._pump_wake.set()

    # ------------------------------------------------------------ the pump

    async def _pump(self) -> None:
        while True:
            await self._pump_wake.wait()
            # A moment's wait gathers a busy run's commits into one read of its timeline.
            await asyncio.sleep(_GATHER_SECONDS)
            self._pump_wake.clear()
            while self._dirty:
                run_id = self._dirty.pop()
                try:
                    more = await self._pump_run(run_id)
                except Exception:  # The database may be busy for a moment: try again soon.
                    log.exception("publish_pump_failed", run_id=run_id)
                    self._dirty.add(run_id)
                    await asyncio.sleep(_RETRY_SECONDS)
                    continue
                if more:
                    self._dirty.add(run_id)
                await asyncio.sleep(0)  # Let the engine in between runs.

    async def _pump_run(self, run_id: str) -> bool:
        """Turn the run's new timeline entries into deliveries; True when more are left."""
        cursor = self.outbox.cursor(run_id)
        if cursor is None or cursor[1]:
            self._watching.discard(run_id)
            return False
        after = cursor[0]
        try:
            record = self.outbox.store.run_record(run_id)
            events = await self.backend.timeline(run_id, after=after, limit=_PAGE)
        except RunNotFoundError:
            self.outbox.advance(run_id, after, True, [], self._clock())
            self._watching.discard(run_id)
            return False
        if not events:
            return False
        targets = self.outbox.targets_of(run_id)
        new: list[NewDelivery] = []
        finished = False
        for event in events:
            if event.kind == "run" and event.status in _FINAL_RUN_STATUSES:
                finished = True
            kind = message_type(event)
            if kind is None:
                continue
            outputs = None
            if kind == "conveyor.run.completed":
                outputs = record.outputs
            elif kind == "conveyor.step.completed" and event.step_id is not None:
                outputs = self.outbox.unit_outputs(run_id, event.step_id, event.index)
            message = lifecycle_message(
                event,
                record.pipeline_name,
                outputs=outputs,
                max_output_bytes=self.settings.publish_max_output_bytes,
            )
            assert message is not None
            new += [
                NewDelivery(target.id, event.seq, kind, message)
                for target in targets
                if matches(kind, target.events)
            ]
        self.outbox.advance(run_id, events[-1].seq, finished, new, self._clock())
        if finished:
            self._watching.discard(run_id)
        if new:
            self._send_wake.set()
        return len(events) == _PAGE and not finished

    # ------------------------------------------------------------ the sender

    async def _send(self) -> None:
        while True:
            self._send_wake.clear()
            try:
                delay = self._launch_due()
            except Exception:  # The database may be busy for a moment: try again soon.
                log.exception("publish_send_failed")
                delay = _RETRY_SECONDS
            try:
                async with asyncio.timeout(delay):
                    await self._send_wake.wait()
            except TimeoutError:
                pass

    def _launch_due(self) -> float | None:
        """Start every due delivery there is room for; seconds until the next one is due."""
        capacity = self.settings.publish_concurrency - len(self._inflight)
        if capacity <= 0:
            return None  # A delivery that ends wakes the sender.
        now = self._clock()
        for head in self.outbox.pending_heads(len(self._inflight) + capacity):
            if head.target_id in self._inflight:
                continue
            if head.next_attempt_at > now:
                return head.next_attempt_at - now
            if capacity == 0:
                return None
            self._inflight[head.target_id] = asyncio.create_task(
                self._deliver(head), name=f"conveyor-deliver-{head.id}"
            )
            capacity -= 1
        return None

    async def _deliver(self, head: Pending) -> None:
        attempt = head.attempts + 1
        try:
            await self._attempt(head)
        except DeliveryError as exc:
            self._record_failure(head, attempt, str(exc), permanent=exc.permanent)
        except Exception as exc:  # A defect here must not stop the other deliveries.
            log.exception("publish_delivery_crashed", delivery_id=head.id)
            self._record_failure(head, attempt, f"{type(exc).__name__}: {exc}", permanent=False)
        else:
            self.outbox.delivered(head.id, attempt, self._clock())
        finally:
            self._inflight.pop(head.target_id, None)
            self._send_wake.set()

    async def _attempt(self, head: Pending) -> None:
        now = self._clock()
        if head.kind == "webhook":
            assert self._webhooks is not None and head.secret is not None
            body = encode({**head.message, "delivery_id": head.id, "sent_at": utc_now_iso(now)})
            await self._webhooks.send(
                head.address,
                self._reveal(head.secret),
                body,
                msg_id=head.id,
                timestamp=int(now),
                headers={EVENT_HEADER: head.type},
            )
        else:
            assert self._topics is not None
            await self._topics.send(head.address, cloud_event(head.message, head.id))

    @property
    def _secrets(self) -> SecretBox:
        if self._box is None:
            # Before `start` (a run attached while the service starts): the same key.
            self._box = SecretBox.from_settings(self.settings)
        return self._box

    def _reveal(self, stored: str) -> str:
        try:
            return self._secrets.reveal(stored)
        except SecretUnreadable as exc:
            raise DeliveryError(str(exc), permanent=True) from exc

    def _record_failure(self, head: Pending, attempt: int, error: str, *, permanent: bool) -> None:
        if permanent or attempt >= self.settings.publish_max_attempts:
            log.warning("publish_delivery_failed", delivery_id=head.id, error=error)
            self.outbox.failed(head.id, attempt, error)
        else:
            retry_at = self._clock() + backoff_seconds(attempt, self.settings)
            self.outbox.retry_at(head.id, attempt, error, retry_at)
