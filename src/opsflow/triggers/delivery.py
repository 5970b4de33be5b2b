"""What the ingress does with a delivery, the same for every trigger type: find the trigger
behind the key, count the delivery against the key's rate limit, start what the source read
(deduplicated), and record every outcome in the delivery log.

The route (``api/hooks.py``) makes two blocking calls off the event loop per delivery and
reads the body between them: `DeliveryDesk.open` (find the trigger, authenticate from the
headers) and `DeliveryDesk.finish` (check a signature of the body, read it with the type's
source, count against the rate limit, start, record). Two thread hops, not one per step,
keep the answer within milliseconds.

An authenticated delivery is counted against its key's rate limit once, in the first
transaction that writes anything for it: the one that starts its first run (with the run,
its delivery key and its record: one commit per accepted delivery), or the one that records
its refusal or what the filters left out. Past the limit that transaction writes nothing else
and the sender gets 429, before any other refusal. The counter's row is always taken before
the workflow's (a run's row lock, a delivery record's foreign key), so two deliveries never
wait on each other in a cycle.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opsflow.auth.logmask import SERVER_LOG_FILTER
from opsflow.auth.secrets import SecretBox, SecretVault, UnknownSecret
from opsflow.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    OpsflowError,
    Problem,
    RateLimited,
    Unauthorized,
)
from opsflow.runtime.changes import Changes
from opsflow.runtime.service import Runtime
from opsflow.spec.triggers import TriggerType
from opsflow.store import deliveries as log_store
from opsflow.store import triggers as triggers_store
from opsflow.store.deliveries import DeliveryOutcome, NewDelivery
from opsflow.store.session import Session
from opsflow.triggers.fire import Claim, Event, Fired, TriggerRefused, fire_in
from opsflow.triggers.ingress import (
    BodyInvalid,
    Headers,
    HookSource,
    NotAuthenticated,
    Reading,
    Skip,
    Start,
)
from opsflow.triggers.sync import HOOK_TYPES, generated_secret

log = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 60
DEFAULT_RATE_PER_MINUTE = 120
# Refused deliveries that are not authenticated are recorded up to this many per key and
# minute: a flood of forged requests cannot fill the log, and the rest only count.
REFUSALS_RECORDED_PER_MINUTE = 10
PRUNE_EVERY_SECONDS = 600


@dataclass(frozen=True)
class HookTarget:
    """The trigger behind a hook key, as the ingress needs it (secret included: never log)."""

    trigger_id: int
    workflow_id: str
    name: str
    type: str
    hook_key: str
    spec: dict[str, object]
    # None: the opsflow secret the YAML names is not defined (`missing_secret` says which).
    secret: str | None = field(repr=False)
    missing_secret: str | None = None


@dataclass(frozen=True)
class Arrival:
    """Facts about one HTTP delivery, for its records."""

    request_id: str
    received_at: float
    source_address: str

    @classmethod
    def now(cls, source_address: str) -> Arrival:
        return cls(uuid.uuid4().hex, time.time(), source_address)

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.received_at, UTC)


# What a trigger type keeps of a delivery's items beyond the delivery log (the incidents an
# Alertmanager notification carried). Made once per authenticated delivery from its trigger and
# raw body; then called per item (its index in the source's reading, the run it started or
# found, or None, and the arrival time) inside the transaction that starts or finds that run, so
# the record and the run commit together. An item that started nothing is observed afterwards,
# in one transaction with the delivery log's rows for such items.
ItemObserver = Callable[[Session, int, str | None, float], None]
Observer = Callable[["HookTarget", bytes], ItemObserver]


@dataclass(frozen=True)
class Opened:
    """A delivery whose trigger is found: whether its headers authenticated it already (else
    its body's signature must)."""

    target: HookTarget
    source: HookSource
    authenticated: bool


@dataclass(frozen=True)
class Settled:
    """What came of one item: its outcome, the execution (started or found) and why."""

    outcome: DeliveryOutcome
    execution_id: str | None = None
    reason: str = ""


class DeliveryDesk:
    """The blocking half of the ingress, one per server process."""

    def __init__(
        self,
        runtime: Runtime,
        box: SecretBox,
        vault: SecretVault,
        sources: Mapping[TriggerType, HookSource],
        *,
        body_check: Callable[[bytes], None] = lambda _body: None,
        rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
        clock: Callable[[], float] = time.time,
        observers: Mapping[TriggerType, Observer] | None = None,
    ) -> None:
        self.runtime = runtime
        self.db = runtime.db
        self.box = box
        self.vault = vault
        self.sources = dict(sources)
        # Run on an authenticated body before its source parses it (the API's JSON nesting
        # limit: a parser recurses as deep as the text nests). Raises InvalidInput.
        self.body_check = body_check
        self.rate_per_minute = rate_per_minute
        self.clock = clock
        self.observers = dict(observers or {})
        self._pruned_at = -math.inf

    def open(self, key: str, headers: Headers, arrival: Arrival) -> Opened:
        """Find the trigger behind ``key`` and authenticate the delivery from its headers;
        an authenticated one is counted against the key's rate limit (`RateLimited`).

        Raises `NotFound` for an unknown key and `Unauthorized` (recorded) for a sender
        without the secret; nothing else is written for either. An authenticated delivery
        is counted against the rate limit by `finish` (or by `refuse`, if its body is too
        large), in the transaction that writes what came of it."""
        target = self.target(key)
        source = self.sources.get(TriggerType(target.type))
        if source is None:
            raise NotFound(f"{target.type} triggers take no deliveries on a hook URL")
        if target.secret is None:
            # The owner reads which secret is missing in the delivery log; the sender, who
            # may be anyone with the URL, learns no secret's name.
            name = target.missing_secret
            self.refuse(
                target,
                arrival,
                Conflict(
                    f"the trigger's secret {name} is not defined: an admin sets it with "
                    f"`opsflow secrets set {name}`"
                ),
                authenticated=False,
            )
            raise Conflict("this trigger cannot take deliveries yet: its secret is not set")
        try:
            authenticated = source.authenticate(target.spec, target.secret, headers)
        except NotAuthenticated as exc:
            error = Unauthorized(str(exc))
            self.refuse(target, arrival, error, authenticated=False)
            raise error from None
        return Opened(target, source, authenticated)

    def finish(
        self, opened: Opened, headers: Headers, body: bytes, arrival: Arrival
    ) -> list[Settled]:
        """Check the body's signature when the headers did not authenticate, read the body
        with the trigger type's source, and start and record what it asks for, counting the
        delivery against the key's rate limit (`RateLimited`)."""
        target, source = opened.target, opened.source
        assert target.secret is not None  # `open` refused the delivery otherwise
        if not opened.authenticated:
            try:
                source.check_body(target.spec, target.secret, headers, body, arrival.received_at)
            except NotAuthenticated as exc:
                error = Unauthorized(str(exc))
                self.refuse(target, arrival, error, authenticated=False)
                raise error from None
        try:
            self.body_check(body)
            reading = _read(source, target, headers, body)
        except InvalidInput as exc:
            self.refuse(target, arrival, exc, authenticated=True, count=True)
            raise
        observer = self.observers.get(TriggerType(target.type))
        observe = observer(target, body) if observer is not None else None
        return self.settle(target, arrival, reading, observe, count=True)

    def target(self, key: str) -> HookTarget:
        """The trigger behind ``key``; `NotFound` when no hook trigger has it."""
        # One or two reads that need no common snapshot: no transaction round trips.
        with self.db.read_lone() as session:
            trigger = triggers_store.get_by_hook_key(session, key)
            if trigger is None or trigger.type not in HOOK_TYPES:
                # The key is not echoed: it may be long, and it is whatever the sender typed.
                raise NotFound("no trigger has this hook key; `opsflow triggers list` shows URLs")
            secret: str | None = None
            if trigger.secret_name:
                try:
                    revealed = self.vault.reveal(session, [trigger.secret_name])
                    secret = revealed[trigger.secret_name]
                except UnknownSecret:
                    pass  # `open` refuses, naming it only in the delivery log
            else:
                generated = generated_secret(self.box, trigger)
                if generated is None:  # sync gives every hook trigger one
                    raise Conflict(f"trigger {trigger.name!r} has no secret: rotate it")
                secret = generated
        if secret is not None:
            SERVER_LOG_FILTER.learn([secret])
        return HookTarget(
            trigger_id=trigger.id,
            workflow_id=trigger.workflow_id,
            name=trigger.name,
            type=trigger.type,
            hook_key=key,
            spec=trigger.spec,
            secret=secret,
            missing_secret=trigger.secret_name if secret is None else None,
        )

    def refuse(
        self,
        target: HookTarget,
        arrival: Arrival,
        error: OpsflowError,
        *,
        authenticated: bool,
        delivery_key: str | None = None,
        count: bool = False,
    ) -> None:
        """Record that the delivery was refused with ``error`` (an unauthenticated one only
        while the key's refusals this minute are few).

        With ``count`` (an authenticated delivery not yet counted) the delivery is counted
        against the key's rate limit first, in the same transaction; past the limit this
        raises `RateLimited` instead, having recorded only the first such refusal of the
        minute."""
        window = int(arrival.received_at // RATE_WINDOW_SECONDS)
        limited: RateLimited | None = None
        with self.db.session() as session:
            if count:
                limited = self._count(session, target, arrival)
            if not authenticated:
                seen = log_store.count_in_window(session, target.hook_key, window, "refused")
                if seen > REFUSALS_RECORDED_PER_MINUTE:
                    return
            if limited is None:
                self._record_refusal(session, target, arrival, error, delivery_key)
        if limited is not None:
            raise limited

    def _record_refusal(
        self,
        session: Session,
        target: HookTarget,
        arrival: Arrival,
        error: OpsflowError,
        delivery_key: str | None,
    ) -> None:
        log_store.record(
            session,
            [
                self._row(
                    target,
                    arrival,
                    DeliveryOutcome.REFUSED,
                    error.status_code,
                    error.message,
                    delivery_key,
                    None,
                )
            ],
        )

    def admit(self, target: HookTarget, arrival: Arrival) -> None:
        """Count an authenticated delivery against the key's limit in a transaction of its
        own; `RateLimited` past it (the first refusal of a minute is recorded, the rest only
        counted)."""
        with self.db.session() as session:
            limited = self._count(session, target, arrival)
        if limited is not None:
            raise limited

    def _count(
        self, session: Session, target: HookTarget, arrival: Arrival, *, record: bool = True
    ) -> RateLimited | None:
        """Count the delivery against its key's limit in the caller's transaction: None
        within the limit, else the error to raise once the transaction has ended (with
        ``record``, the first refusal of the minute is recorded in it)."""
        window = int(arrival.received_at // RATE_WINDOW_SECONDS)
        count = log_store.count_in_window(session, target.hook_key, window, "accepted")
        if count <= self.rate_per_minute:
            return None
        retry_after = max(1, math.ceil((window + 1) * RATE_WINDOW_SECONDS - arrival.received_at))
        error = RateLimited(
            f"more than {self.rate_per_minute} deliveries this minute on this hook key; "
            f"try again in {retry_after} s",
            retry_after=retry_after,
        )
        if record and count == self.rate_per_minute + 1:
            log_store.record(
                session,
                [
                    self._row(
                        target, arrival, DeliveryOutcome.REFUSED, 429, error.message, None, None
                    )
                ],
            )
        return error

    def settle(
        self,
        target: HookTarget,
        arrival: Arrival,
        reading: Reading,
        observe: ItemObserver | None = None,
        *,
        count: bool = False,
    ) -> list[Settled]:
        """Start each `Start` of ``reading`` (deduplicated) and record every item.

        Each start is one transaction of `fire`, and its delivery record (and what ``observe``
        keeps of it) is written inside it by the claim, so a run and its records commit
        together. A refusal (paused workflow, disabled trigger, bad params) is recorded on its
        own; when nothing of the delivery started or repeated, the first refusal is raised
        (409 or 422 to the sender). With ``count`` (a delivery on the hook URL, not a poll)
        the first transaction that writes counts the delivery against the key's rate limit
        (`RateLimited` past it, with nothing started).
        """
        settled: list[Settled] = []
        refusals: list[OpsflowError] = []
        skipped: list[NewDelivery] = []
        unstarted: list[int] = []  # items that started or found no run, for ``observe``
        for index, item in enumerate(reading.items):
            if isinstance(item, Skip):
                unstarted.append(index)
                settled.append(Settled(DeliveryOutcome.FILTERED, reason=item.reason))
                skipped.append(
                    self._row(
                        target,
                        arrival,
                        DeliveryOutcome.FILTERED,
                        200,
                        item.reason,
                        item.dedupe_key,
                        None,
                    )
                )
                continue
            event = _event(target, arrival, item)
            try:
                fired = self._fire(target, arrival, event, item, index, observe, count=count)
            except (TriggerRefused, InvalidInput, NotFound) as exc:
                unstarted.append(index)
                self.refuse(
                    target,
                    arrival,
                    exc,
                    authenticated=True,
                    delivery_key=item.dedupe_key,
                    count=count,
                )
                count = False
                settled.append(Settled(DeliveryOutcome.REFUSED, reason=exc.message))
                refusals.append(exc)
                continue
            count = False
            if fired.created:
                settled.append(Settled(DeliveryOutcome.STARTED, fired.execution_id, item.summary))
            else:
                settled.append(
                    Settled(DeliveryOutcome.DEDUPLICATED, fired.execution_id, _repeat(item))
                )
        if count or skipped or (observe is not None and unstarted):
            limited: RateLimited | None = None
            with self.db.session() as session:
                if count:
                    limited = self._count(session, target, arrival)
                if limited is None and skipped:
                    log_store.record(session, skipped)
                if limited is None and observe is not None:
                    for index in unstarted:
                        observe(session, index, None, arrival.received_at)
            if limited is not None:
                raise limited
        self._maybe_prune()
        if refusals and all(s.execution_id is None for s in settled):
            raise refusals[0]
        return settled

    def _fire(
        self,
        target: HookTarget,
        arrival: Arrival,
        event: Event,
        item: Start,
        index: int,
        observe: ItemObserver | None,
        *,
        count: bool,
    ) -> Fired:
        """`fire` the item in one transaction with its claim and, with ``count``, the
        delivery's rate count (first: see the module's docstring). Past the limit that
        transaction is rolled back and `admit` counts and refuses the delivery on its own
        (`RateLimited`)."""
        claim = self._claim(target, arrival, item, index, observe)

        def start(counted: bool) -> Callable[[Session, Changes], Fired]:
            def run(session: Session, changes: Changes) -> Fired:
                if counted and self._count(session, target, arrival, record=False) is not None:
                    raise _OverLimit
                return fire_in(
                    self.runtime, session, changes, target.trigger_id, event, claim=claim
                )

            return run

        try:
            return self.runtime.transact(start(count))
        except _OverLimit:
            self.admit(target, arrival)  # raises RateLimited
        # `admit` found the key under its limit after all (its minute's counter pruned
        # meanwhile): the delivery is counted now, so it starts like any other.
        return self.runtime.transact(start(False))

    def _claim(
        self,
        target: HookTarget,
        arrival: Arrival,
        item: Start,
        index: int,
        observe: ItemObserver | None,
    ) -> Claim:
        """The claim `fire` makes in its transaction: the delivery key (if any), the
        delivery's record, for the new run or for the earlier one a repeat found, and what
        ``observe`` keeps of item ``index``."""

        def claim(session: Session, execution_id: str) -> str | None:
            started = self._row(
                target,
                arrival,
                DeliveryOutcome.STARTED,
                202,
                item.summary,
                item.dedupe_key,
                execution_id,
            )
            earlier = None
            if item.dedupe_key is None:
                log_store.record(session, [started])
            else:
                earlier = log_store.claim_key_and_record(
                    session, target.trigger_id, item.dedupe_key, started, arrival.at
                )
            if earlier is not None:
                repeat = self._row(
                    target,
                    arrival,
                    DeliveryOutcome.DEDUPLICATED,
                    200,
                    _repeat(item),
                    item.dedupe_key,
                    earlier,
                )
                log_store.record(session, [repeat])
            if observe is not None:
                observe(session, index, earlier or execution_id, arrival.received_at)
            return earlier

        return claim

    def _row(
        self,
        target: HookTarget,
        arrival: Arrival,
        outcome: DeliveryOutcome,
        status: int,
        reason: str,
        delivery_key: str | None,
        execution_id: str | None,
    ) -> NewDelivery:
        return NewDelivery(
            request_id=arrival.request_id,
            workflow_id=target.workflow_id,
            trigger_name=target.name,
            trigger_type=target.type,
            received_at=arrival.at,
            source_address=arrival.source_address,
            outcome=outcome,
            status_code=status,
            reason=reason,
            delivery_key=delivery_key,
            execution_id=execution_id,
        )

    def _maybe_prune(self) -> None:
        """Every `PRUNE_EVERY_SECONDS` per process: drop deliveries past their 7 days and rate
        windows past their minute."""
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        with self.db.session() as session:
            gone = log_store.prune(
                session, datetime.fromtimestamp(now, UTC), int(now // RATE_WINDOW_SECONDS)
            )
        if gone:
            log.info("pruned %d trigger deliveries older than %d days", gone, log_store.KEEP_DAYS)


class _OverLimit(Exception):
    """The delivery is past its key's rate limit (raised inside a transaction to roll it
    back; `DeliveryDesk.admit` then counts and records it on its own)."""


def _repeat(item: Start) -> str:
    return f"a repeat of delivery {item.dedupe_key!r}: no new run"


# Keys of a `Start`'s trigger part that become template names of their own (`git.ref`).
CONTEXT_NAMES = ("git", "incident")


def _event(target: HookTarget, arrival: Arrival, item: Start) -> Event:
    """What `fire` needs from a source's `Start`, with where the delivery came from."""
    record = dict(item.trigger)
    body = record.pop("body", None)
    context = {name: record.pop(name) for name in CONTEXT_NAMES if name in record}
    return Event(
        source=item.source or item.summary or f"hook key {target.hook_key}",
        body=body,
        params=item.params,
        context=context,
        details={**record, "hook_key": target.hook_key, "address": arrival.source_address},
    )


def _read(source: HookSource, target: HookTarget, headers: Headers, body: bytes) -> Reading:
    """The source's reading of the body; a `BodyInvalid` becomes a located 422."""
    try:
        return source.read(target.spec, headers, body)
    except BodyInvalid as exc:
        raise InvalidInput(str(exc), problems=[Problem(exc.loc, str(exc))]) from None
