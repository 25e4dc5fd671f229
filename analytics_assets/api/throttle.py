"""When may the next request of a sync go, and how many may be in flight: the one owner of "the API
pushed back". It decides from the rate limit the API announces, a 429's or 503's Retry-After, a
ceiling of the deployment's own (ANALYTICS_MAX_REQUESTS_PER_SECOND), ANALYTICS_MAX_CONCURRENCY, and
the concurrency it allows after a 429; every request of the sync asks it, whichever thread sends it
(the paging loop, the pages requested ahead, the days' totals).

Why pace instead of merely retrying: every 429 spends one of a request's retries, and an API may
ban a client that keeps exceeding its limit. An API that announces its limit (`RateLimit-*`, IETF
draft, or `X-RateLimit-*`) is paced at that limit: requests are spaced by window / limit, and none
is sent once the window's budget is used (requests in flight counted) until the window has reset.
An API that only answers 429 with a Retry-After is obeyed by every thread at once, and requests
resume one at a time, retries first, so that a crowd of retries does not exhaust anyone's budget;
the number in flight then grows back by one per round of successes.

The headers are the API's word, not proof: a value that cannot be a limit is ignored, and no wait
they imply is longer than ANALYTICS_MAX_RETRY_WAIT (with a warning), so that a bad header cannot
hang a run.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterator, Mapping, Optional

from .shared_budget import BudgetUnavailable, SharedBudget

# A Reset this large is a Unix time, not seconds to wait (1e9 s is 2001-09-09 as a date and 31 years
# as a wait); from 1e12 on, a Unix time in milliseconds.
EPOCH_FROM = 1e9
EPOCH_MILLIS_FROM = 1e12
MAX_LIMIT = 10**9  # requests per window; more is not a limit anyone means
FAMILIES = ("RateLimit-", "X-RateLimit-")  # IETF draft first: an API sending both means it
# The ceiling is kept with 1% to spare: the milliseconds between letting a request go and its
# reaching the wire vary (threads, the GIL), and must not put one request too many into a second.
CEILING_SPARE = 1.01
SAID_PAUSE = 1.0  # seconds: a longer pause is said in the run's log
# Shared with other processes (`shared_budget.py`), a request held back by their requests looks at
# the shared state again this often (they cannot wake it), and one waiting for a moment no later
# than this; a waiting request's claim to go first lapses unless renewed within WAITING_LAPSES.
POLL_SECONDS = 0.005
NAP_SECONDS = 0.2
WAITING_LAPSES = 1.0
OFFSET_TOLERANCE = 0.001  # seconds; an instant that happened is read as at most this far ahead
MAX_ALLOWANCE = 64  # requests in flight at once: ANALYTICS_MAX_CONCURRENCY's bound
_WINDOW_PARAMETER = re.compile(r";\s*w\s*=\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class Announced:
    """A rate limit as one response announced it."""

    limit: int  # requests admitted per window
    remaining: int  # of them, left in the current window
    reset: float  # seconds from the response until the window resets
    epoch: bool  # the reset came as a Unix time
    whole_seconds: bool  # the reset came in whole seconds: the API rounded it (up, as resets are)
    window: Optional[float] = None  # the window's length, where the API states it (`w=`)
    family: str = "X-RateLimit-"


def read_limit(headers: Mapping[str, str], wall_now: Optional[float] = None) -> Optional[Announced]:
    """The limit a response announces, or None if it announces none (a family lacking any of Limit,
    Remaining or Reset announces none). Raises ValueError, saying why, for values that cannot be a
    limit: the API is input like any other."""
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    for family in FAMILIES:
        values = [lowered.get(f"{family}{part}".lower()) for part in ("Limit", "Remaining", "Reset")]
        if any(value is None for value in values):
            continue
        limit_text, remaining_text, reset_text = values  # type: ignore[misc]
        limit = _first_number(limit_text, f"{family}Limit")
        remaining = _first_number(remaining_text, f"{family}Remaining")
        reset = _first_number(reset_text, f"{family}Reset")
        if not (limit.is_integer() and 1 <= limit <= MAX_LIMIT):
            raise ValueError(f"{family}Limit: {limit_text.strip()[:40]!r} is not a number of requests")
        if not remaining.is_integer():
            raise ValueError(f"{family}Remaining: {remaining_text.strip()[:40]!r} is not a number of requests")
        epoch = reset >= EPOCH_FROM
        whole = reset.is_integer()
        if epoch:
            now = time.time() if wall_now is None else wall_now
            reset = max(0.0, (reset / 1000 if reset >= EPOCH_MILLIS_FROM else reset) - now)
        policy = lowered.get(f"{family}Policy".lower(), "") if family == "RateLimit-" else ""
        window = _window(limit_text) or _window(policy)
        return Announced(int(limit), int(min(remaining, limit)), reset, epoch, whole, window, family)
    return None


def _first_number(text: str, name: str) -> float:
    """The number of a header's first list member (`10, 10;w=1` is 10)."""
    first = text.split(",", 1)[0].split(";", 1)[0].strip()
    try:
        value = float(first)
    except ValueError:
        raise ValueError(f"{name}: {text.strip()[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: {text.strip()[:40]!r} is not a count or a time")
    return value


def _window(text: str) -> Optional[float]:
    """A quota policy's window (`10;w=1`), in seconds, if one is stated and positive."""
    found = _WINDOW_PARAMETER.search(text)
    seconds = float(found.group(1)) if found else 0.0
    return seconds if seconds > 0 else None


@dataclass(frozen=True)
class Ticket:
    """A request let through: the throttle needs to know which request an answer belongs to."""

    seq: int  # requests let through so far, this one included
    sent: float  # monotonic clock
    waited: float  # seconds it waited to go


class AnnouncedBudget:
    """What the API's rate limit headers say, as learnt from its answers: the limit, the window's
    length (estimated from the resets announced), and the budget left in the current window (the
    least `Remaining` announced in it, less the requests unanswered). Not thread-safe: the
    throttle calls it under its lock, passing the requests in flight (their sequence numbers)."""

    def __init__(self, max_wait: float, warn_once: Callable[[str, str], None], wall_clock: Callable[[], float]) -> None:
        self.max_wait = max_wait
        self._warn_once = warn_once
        self._wall_clock = wall_clock
        self.forget()

    def forget(self) -> None:
        """Know nothing of the API's limit (as before its first answer)."""
        self.limit: Optional[int] = None
        self.window: Optional[float] = None  # the window's length, as estimated
        self._trusted = True  # whether the window is read to the whole second (until a 429 says otherwise)
        self._longest = 0.0  # the longest time to a reset announced, from the request's sending
        # The budget of the current window: the least any answer in it said remains, less the requests
        # sent before the window that were still unanswered then (`_remaining`); requests sent since
        # it began count while they are unanswered. Answers to requests sent before it are old news.
        self._window_from = 0  # the first request sent in the current window (by what the client knows)
        self._remaining: Optional[int] = None
        self._reset_at: Optional[float] = None  # monotonic; None: a fresh window of unknown end
        self._opened: Optional[tuple[int, float]] = None  # (seq, answer's arrival) of the request that opened it

    def snapshot(self, to_wall: Callable[[float], float]) -> dict[str, Any]:
        """What was learnt, for the throttles of other processes (instants on the wall clock)."""
        return {"limit": self.limit, "window": self.window, "trusted": self._trusted, "longest": self._longest,
                "window_from": self._window_from, "remaining": self._remaining,
                "reset_at": None if self._reset_at is None else to_wall(self._reset_at),
                "opened": None if self._opened is None else [self._opened[0], to_wall(self._opened[1])]}

    def restore(self, state: Mapping[str, Any], to_local: Callable[[float], float], now: float) -> None:
        """What another process's throttle learnt (a `snapshot`): read whole before anything is
        changed (ValueError, TypeError or KeyError on a malformed one), every instant and length
        bounded by ANALYTICS_MAX_RETRY_WAIT, so that no state left behind can hold requests longer."""
        limit, remaining, window, opened = state["limit"], state["remaining"], state["window"], state["opened"]
        values = (
            None if limit is None else int(limit),
            None if window is None else min(float(window), self.max_wait),
            bool(state["trusted"]),
            min(float(state["longest"]), self.max_wait),
            int(state["window_from"]),
            None if remaining is None else int(remaining),
            None if state["reset_at"] is None else min(to_local(float(state["reset_at"])), now + self.max_wait),
            None if opened is None else (int(opened[0]), min(to_local(float(opened[1])), now + OFFSET_TOLERANCE)),
        )
        (self.limit, self.window, self._trusted, self._longest, self._window_from, self._remaining,
         self._reset_at, self._opened) = values

    @property
    def interval(self) -> float:
        """Seconds between the starts of two requests at the announced pace."""
        return self.window / self.limit if self.window and self.limit else 0.0

    def ready_at(self, now: float, issued: int, in_flight: Collection[int]) -> Optional[float]:
        """When the window's budget admits another request (None: it does not constrain it)."""
        if self.limit is None or self._remaining is None:
            return None
        if self._reset_at is not None and now >= self._reset_at:
            # The window we knew has reset: a full one, less the requests still unanswered.
            self._open_window(issued + 1, self.limit, None, in_flight)
            self._opened = None
        if self._remaining - (len(in_flight) - _unanswered_before(self._window_from, in_flight)) > 0:
            return None
        if self._reset_at is None:  # used up before any answer said when it resets
            self._reset_at = now + self.max_wait
        return self._reset_at

    def unanswered(self, seq: int) -> None:
        """Request `seq` ended without an answer: it may have reached the API, no answer said otherwise."""
        if self._remaining is not None and seq >= self._window_from:
            self._remaining -= 1

    def heed(self, ticket: Ticket, status: Optional[int], headers: Mapping[str, str], now: float,
             in_flight: Collection[int]) -> bool:
        """Learns what an answer announces; whether it announced a limit."""
        try:
            announced = read_limit(headers, self._wall_clock())
        except ValueError as error:
            self._warn_once("implausible", f"ignored the API's rate limit headers: {error}.")
            return False
        if announced is None:
            return False
        if announced.limit != self.limit:  # a new limit (or the first): what was learnt of the old one is moot
            self.limit, self.window, self._trusted, self._longest = announced.limit, None, True, 0.0
            self._window_from, self._remaining, self._reset_at, self._opened = 0, None, None, None
        reset = announced.reset
        if reset > self.max_wait:
            self._warn_once("reset", f"the API announced that its rate limit resets in {reset:.0f} s "
                            f"({announced.family}Reset); ANALYTICS_MAX_RETRY_WAIT={self.max_wait:g} caps every wait, so "
                            "requests resume sooner than announced.")
            reset = self.max_wait
        latest = now + reset  # the window has reset by then: the API rounds a reset up, never down
        rounding = 1.0 if announced.whole_seconds and not announced.window else 0.0
        # And not before: an epoch counts from the wall clock's second, a delay from the request's arrival.
        earliest = latest - rounding if announced.epoch else ticket.sent + reset - rounding
        self._longest = min(max(self._longest, latest - ticket.sent), self.max_wait)
        if announced.remaining == announced.limit - 1:
            # This request opened the window: it lasts the announced reset from the request's arrival.
            self._opened = (ticket.seq, now)
            self._learn_window(announced, reset, latest - ticket.sent)
        if status == 429 and self._trusted:
            # Throttled at the pace we set: read the window as long as any reset announced, from now on.
            self._trusted = False
            self.window = max(self.window or 0.0, self._longest)
        if ticket.seq < self._window_from:
            return True  # sent before the current window: counted while it was unanswered
        if self._trusted and self._opened is not None and self.window and self._opened[0] <= ticket.seq:
            guess = self._opened[1] + self.window  # the window ends no later than its opening's answer + its length
            if guess >= earliest:  # else it is an older window's opening
                latest = min(latest, guess)
        newer = (self._remaining is None or announced.remaining == announced.limit - 1
                 or (self._reset_at is not None and earliest > self._reset_at))
        if newer:  # the first answer, or one from a window that began after the one we count in
            self._open_window(ticket.seq, announced.remaining, latest, in_flight)
        else:
            # Requests reach the API in another order than they were sent: the least remaining
            # announced is the newest count (less the requests sent before the window and still
            # unanswered: they may reach the API after this one), and every end announced is an
            # upper bound.
            after = announced.remaining - _unanswered_before(self._window_from, in_flight)
            self._remaining = min(self._remaining, after)
            self._reset_at = latest if self._reset_at is None else min(self._reset_at, latest)
        return True

    def _open_window(self, first_seq: int, remaining: int, reset_at: Optional[float],
                     in_flight: Collection[int]) -> None:
        """Count in a new window from request `first_seq` on: the requests sent before it and still
        unanswered may reach the API in it, so they are spent from its budget now."""
        self._remaining = remaining - _unanswered_before(first_seq, in_flight)
        self._window_from, self._reset_at = first_seq, reset_at

    def _learn_window(self, announced: Announced, reset: float, from_sending: float) -> None:
        """The window's length from an answer to the request that opened it. A reset is only ever
        rounded up, so the shortest such reading is the truest, until a 429 shows that a reading
        was too short: from then on the longest."""
        if announced.window:
            sample = announced.window
        elif announced.epoch and announced.whole_seconds and self._trusted:
            # An epoch counts the wall clock's whole seconds, up to a second more than the window
            # has left: read to the whole second, as the API states it.
            sample = max(1.0, math.floor(from_sending))
        elif announced.epoch:
            sample = from_sending
        else:
            sample = reset  # the API's own count, from the arrival of the request that opened the window
        sample = min(sample, self.max_wait)
        if self._trusted:
            self.window = sample if self.window is None else min(self.window, sample)
        else:
            self.window = max(self.window or 0.0, sample)


def _unanswered_before(seq: int, in_flight: Collection[int]) -> int:
    """Requests sent before request `seq` and not answered yet."""
    return sum(1 for sent in in_flight if sent < seq)


class Throttle:
    """Decides when each request of one sync may go and how many may be in flight; told every
    answer. Thread-safe.

    `acquire` before a request is sent (it blocks until the request may go), `release` once its
    answer is in (or it failed without one). It holds the pace (the announced limit's, or the
    ceiling's), the announced budget, a pause ordered by a Retry-After, and the requests allowed in
    flight: ANALYTICS_MAX_CONCURRENCY, and after a 429 one, grown back by one per round of
    successes. Requests waiting go in order of priority (the attempt number: retries first), then
    of arrival.

    With a `shared` budget (`shared_budget.py`), all but the sync's own requests in flight and its
    queue are the state of every throttle calling the API with the same client, in any process of
    the deployment: each decision reads that state under its lock and writes it back, so the
    pace, the window's count, a pause and the allowance after a 429 hold for all of them together,
    and a process's first waiting request yields to a retry waiting in another. Should the shared
    budget fail (its lock held too long, its file no longer writable), the throttle goes on alone
    with what it knew, and says so.
    """

    def __init__(self, max_wait: float, max_per_second: Optional[float] = None, max_in_flight: Optional[int] = None,
                 warn: Optional[Callable[[str], None]] = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, shared: Optional[SharedBudget] = None,
                 say: Optional[Callable[[str], None]] = None) -> None:
        self.max_wait = max_wait
        self._say = say  # a line for the run's log when requests pause longer than SAID_PAUSE
        self._said_until = -math.inf  # the end of the last pause said
        self.max_per_second = max_per_second
        self.max_in_flight = max_in_flight
        self._warn = warn
        self._warned: set[str] = set()
        self._clock = clock
        self._wall_clock = wall_clock
        self._shared = shared
        self.owner = shared.owner if shared is not None else "this sync"
        self._condition = threading.Condition()
        self._queue: list[tuple[int, int]] = []  # (-priority, arrival) of this sync's requests waiting
        self._arrivals = itertools.count()
        self._mine: dict[int, float] = {}  # seq -> start of this sync's requests sent and not yet answered
        # The wall clock less this clock, to read and write the shared state's instants: kept while it
        # holds to a millisecond, so that an instant read twice reads the same (at 1.8e9 s a double
        # holds a quarter of a microsecond, and the two clocks are never read at the same moment).
        self._offset = wall_clock() - clock()
        self.budget = AnnouncedBudget(max_wait, self._warn_once, wall_clock)
        # What every process calling the API has in common, when it is shared: the requests sent
        # (numbered in the order they went), those unanswered (seq -> holder, start), and who waits.
        self._issued = 0
        self._in_flight: dict[int, tuple[str, float]] = {}
        self._waiting: dict[str, tuple[int, float]] = {}  # holder -> (priority, since) of its first waiting request
        self._forget_common()

    def _forget_common(self) -> None:
        """What the API made of the requests so far: the pace, a pause, the allowance after a 429
        and the announced budget, as before the first answer."""
        self._last_start = -math.inf
        self._paused_until = -math.inf
        # Requests allowed in flight in all (None: no cap but each sync's own): one after a 429, grown
        # back by one per round of successes. Shared, it starts at what this sync may have in flight,
        # so that syncs starting together start as one would (against a silent limiter, N times as
        # many requests at once would be refused N times as often), and grows as the API answers.
        self._allowed: Optional[int] = self.max_in_flight if self._shared is not None else None
        self._successes = 0  # since the allowance last grew
        self.budget.forget()

    # --- the two calls of a request ------------------------------------------------------------

    def acquire(self, priority: int = 1) -> Ticket:
        """Blocks until the request may go. Called as late as possible, just before the request goes
        on the wire, so that what it waited for still holds when it arrives; `priority` (the attempt
        number) lets a request that was refused already go before first attempts, so that no
        request spends its retries while others keep taking the window's budget."""
        started = self._clock()
        with self._condition:
            me = (-priority, next(self._arrivals))
            heapq.heappush(self._queue, me)
            try:
                while True:
                    timeout: Optional[float] = None  # not our turn, or capped in flight: until told
                    if self._queue[0] == me:
                        with self._shared_state():
                            now = self._clock()
                            ready = self._ready_at(now, priority)
                            if ready is not None and ready <= now:
                                ticket = self._issue(now, started)
                                break
                            self._wait_in_line(priority, now)
                        if ready is not None and ready - now > SAID_PAUSE and ready > self._said_until + SAID_PAUSE:
                            self._said_until = ready
                            self._say_pause(now, ready)
                        if self._shared is not None:  # other processes tell nothing: look again soon
                            timeout = POLL_SECONDS if ready is None else min(ready - now, NAP_SECONDS)
                        elif ready is not None:
                            timeout = ready - now
                    self._condition.wait(timeout)
            except BaseException:
                self._queue.remove(me)
                heapq.heapify(self._queue)
                self._condition.notify_all()
                raise
            heapq.heappop(self._queue)
            self._condition.notify_all()
        return ticket

    def release(self, ticket: Ticket, status: Optional[int] = None, headers: Optional[Mapping[str, str]] = None,
                retry_after: Optional[float] = None) -> None:
        """What became of a request (its status and headers, and its Retry-After in seconds; nothing
        if it failed without an answer). Every answer counts: the headers are the API's current
        budget, a Retry-After is addressed to the client as a whole, and a 429 means the pace was
        wrong. Must be called for every ticket, or the requests in flight are miscounted."""
        with self._condition:
            with self._shared_state():
                now = self._clock()
                self._in_flight.pop(ticket.seq, None)
                self._mine.pop(ticket.seq, None)
                if headers is None or not self.budget.heed(ticket, status, headers, now, self._in_flight):
                    self.budget.unanswered(ticket.seq)
                if retry_after is not None and status in (429, 503):
                    # The server asked the client, not one request, to wait: every request waits.
                    self._paused_until = max(self._paused_until, now + min(max(retry_after, 0.0), self.max_wait))
                if status == 429:
                    self._allowed, self._successes = 1, 0
                elif status is not None and status < 400 and self._allowed is not None:
                    self._successes += 1
                    if self._successes >= self._allowed:
                        self._allowed, self._successes = self._grown(self._allowed + 1), 0
            self._condition.notify_all()

    def close(self) -> None:
        """Lets go of the shared budget (the sync is over)."""
        with self._condition:
            if self._shared is not None:
                self._shared.close()

    def _grown(self, allowed: int) -> Optional[int]:
        """The allowance after a round of successes: no cap once it reaches what the sync may have in
        flight anyway; shared, once it reaches what any sync may (other processes' syncs may have
        more in flight than this one)."""
        bound = MAX_ALLOWANCE if self._shared is not None else self.max_in_flight
        return None if bound is not None and allowed >= bound else allowed

    def _issue(self, now: float, started: float) -> Ticket:
        self._issued += 1
        self._in_flight[self._issued] = (self.owner, now)
        self._mine[self._issued] = now
        self._waiting.pop(self.owner, None)
        self._last_start = now
        return Ticket(self._issued, now, now - started)

    def _wait_in_line(self, priority: int, now: float) -> None:
        """Tells the other processes that this sync's first request is waiting, and how urgent it is:
        a retry there goes before first attempts here. Not while this sync's own cap holds it."""
        if self._shared is not None and not self._capped_here():
            self._waiting[self.owner] = (priority, now)

    # --- the state shared with other processes --------------------------------------------------

    @contextmanager
    def _shared_state(self) -> Iterator[None]:
        """Around a decision: the state every process has in common, read under the shared budget's
        lock and written back before it is let go; nothing without a shared budget."""
        shared = self._shared
        if shared is None:
            yield
            return
        try:
            stored = shared.lock()
        except BudgetUnavailable as error:
            self._go_alone(error)
            yield
            return
        try:
            self._restore(stored)
            yield
            shared.write(self._dump())
        except BudgetUnavailable as error:
            self._go_alone(error)
        finally:
            shared.unlock()

    def _restore(self, stored: Mapping[str, Any]) -> None:
        """Takes the stored state as this throttle's own. Requests of processes that are gone, or out
        longer than any request may be, no longer count as in flight (nor does anything of a state
        no process has written for longer than ANALYTICS_MAX_RETRY_WAIT: every window and pause it
        knew has ended). An empty or malformed state is taken as what this throttle knew."""
        wall_now, now = self._wall_clock(), self._clock()
        if abs(wall_now - now - self._offset) > OFFSET_TOLERANCE:  # the wall clock was set, or slewed that far
            self._offset = wall_now - now
        if not stored:
            return
        shared = self._shared
        assert shared is not None
        try:
            in_flight, lapsed = {}, []
            for seq_text, (owner, sent) in stored["in_flight"].items():
                seq = int(seq_text)
                if owner == self.owner:
                    continue  # this sync's own are those it holds (`_mine`)
                if shared.lease_over(str(owner), float(sent), wall_now):
                    lapsed.append(seq)
                else:
                    in_flight[seq] = (str(owner), min(float(sent) - self._offset, now + OFFSET_TOLERANCE))
            in_flight.update({seq: (self.owner, sent) for seq, sent in self._mine.items()})
            waiting = {str(owner): (int(priority), float(since) - self._offset)
                       for owner, (priority, since) in stored["waiting"].items()
                       if owner != self.owner and wall_now - float(since) <= WAITING_LAPSES}
            issued = max(int(stored["issued"]), self._issued)
            fresh = wall_now - float(stored["updated"]) <= self.max_wait
            common = (_instant(stored["last_start"], self._to_local, now, OFFSET_TOLERANCE),
                      _instant(stored["paused_until"], self._to_local, now, self.max_wait),
                      None if stored["allowed"] is None else max(1, int(stored["allowed"])),
                      int(stored["successes"])) if fresh else None
            if fresh:
                self.budget.restore(stored["budget"], self._to_local, now)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return  # not a state this version wrote: this throttle's own is written over it
        if common is None:
            self._forget_common()
        else:
            self._last_start, self._paused_until, self._allowed, self._successes = common
        own = self._waiting.get(self.owner)
        self._in_flight, self._issued = in_flight, issued
        self._waiting = {**waiting, **({self.owner: own} if own else {})}
        for seq in lapsed:  # sent, never answered: it may have reached the API
            self.budget.unanswered(seq)

    def _dump(self) -> dict[str, Any]:
        to_wall = self._to_wall
        return {
            "updated": self._clock() + self._offset,
            "issued": self._issued,
            "in_flight": {str(seq): [owner, to_wall(sent)] for seq, (owner, sent) in self._in_flight.items()},
            "last_start": None if self._last_start == -math.inf else to_wall(self._last_start),
            "paused_until": None if self._paused_until == -math.inf else to_wall(self._paused_until),
            "allowed": self._allowed,
            "successes": self._successes,
            "waiting": {owner: [priority, to_wall(since)] for owner, (priority, since) in self._waiting.items()},
            "budget": self.budget.snapshot(to_wall),
        }

    def _to_wall(self, instant: float) -> float:
        return instant + self._offset

    def _to_local(self, instant: float) -> float:
        return instant - self._offset

    def _go_alone(self, error: BudgetUnavailable) -> None:
        """The shared budget failed: from now on this throttle decides alone, from what it knew, and
        the run's log says so. Other processes' requests in flight and waiting are no longer seen."""
        self._shared = None
        self._in_flight = {seq: (self.owner, sent) for seq, sent in self._mine.items()}
        self._waiting = {}
        if self._allowed is not None and self.max_in_flight is not None and self._allowed >= self.max_in_flight:
            self._allowed = None
        if self._warn is not None:
            self._warn(str(error))

    # --- what the state says ---------------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Seconds between the starts of two requests: the announced pace, or the ceiling's."""
        ceiling = CEILING_SPARE / self.max_per_second if self.max_per_second else 0.0
        return min(max(ceiling, self.budget.interval), self.max_wait)

    @property
    def window(self) -> Optional[float]:
        """The announced limit's window, as estimated so far."""
        return self.budget.window

    @property
    def allowed_in_flight(self) -> Optional[int]:
        """Requests that may be in flight now (None: no cap): what is worth sending ahead."""
        caps = [cap for cap in (self.max_in_flight, self._allowed) if cap is not None]
        return min(caps) if caps else None

    @property
    def shared(self) -> bool:
        """Whether the budget is shared with other processes (it may stop being, should it fail)."""
        return self._shared is not None

    @property
    def waiting(self) -> int:
        """Requests waiting to go."""
        with self._condition:
            return len(self._queue)

    def delay(self) -> float:
        """Seconds until the next request may go (inf while it waits for an answer in flight):
        the throttle's decision, without waiting for it."""
        with self._condition, self._shared_state():
            now = self._clock()
            ready = self._ready_at(now)
            return math.inf if ready is None else max(0.0, ready - now)

    def _capped_here(self) -> bool:
        return self.max_in_flight is not None and len(self._mine) >= self.max_in_flight

    def _ready_at(self, now: float, priority: int = 1) -> Optional[float]:
        """When the next request may go; None while the requests in flight are all that may be (or,
        shared, while a retry of another process waits)."""
        if self._capped_here() or (self._allowed is not None and len(self._in_flight) >= self._allowed):
            return None
        if any(urgency > priority for owner, (urgency, _) in self._waiting.items() if owner != self.owner):
            return None
        ready = max(self._last_start + self.interval, self._paused_until)
        budget_ready = self.budget.ready_at(now, self._issued, self._in_flight)
        return ready if budget_ready is None else max(ready, budget_ready)

    def _say_pause(self, now: float, ready: float) -> None:
        """Says why requests wait, once per pause (a pace's waits once per sync)."""
        if self._say is None:
            return
        if ready <= self._paused_until:
            why = "the server asked the client to wait (Retry-After)"
        elif ready > self._last_start + self.interval:
            why = (f"the API's announced rate limit ({self.budget.limit} requests a window) is spent until its "
                   "window resets")
        elif "pace" in self._warned:
            return
        else:
            self._warned.add("pace")
            ceiling = self.max_per_second and CEILING_SPARE / self.max_per_second >= self.budget.interval
            source = f"ANALYTICS_MAX_REQUESTS_PER_SECOND={self.max_per_second:g}" if ceiling else \
                f"the API's announced limit of {self.budget.limit} requests a window"
            why = f"requests are paced at one every {self.interval:.1f} s ({source}); said once a run"
        self._say(f"waiting {ready - now:.1f} s before the next request: {why}.")

    def _warn_once(self, kind: str, message: str) -> None:
        if kind in self._warned or self._warn is None:
            return
        self._warned.add(kind)
        self._warn(message)


def _instant(value: Any, to_local: Callable[[float], float], now: float, ahead: float) -> float:
    """A stored instant on this clock, at most `ahead` seconds from now (None: never)."""
    return -math.inf if value is None else min(to_local(float(value)), now + ahead)
