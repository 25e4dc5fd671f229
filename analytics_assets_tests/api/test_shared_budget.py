"""One budget per API across processes: two `Throttle`s, each with its own descriptor of one budget
file (as two processes have), on a clock the test moves. What one learns or is told holds for the
other; what a process that is gone left behind does not hold anyone up; and a budget that cannot be
used leaves a sync pacing alone, saying so."""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from analytics_assets.api.shared_budget import SharedBudget, identity, open_shared_budget
from analytics_assets.api.throttle import Throttle
from analytics_assets.api.urls import Origin

NOW = 1_800_000_000.0  # the wall clock when the test clock reads 0
API = Origin("https", "api.example.com", 443)
CLIENT_ID = "client-7f3a9"
LEASE = 150.0


def approx(expected: float):
    """Instants pass through the file on the wall clock (1.8e9 s, a quarter of a microsecond to a
    double): equal to a few microseconds."""
    return pytest.approx(expected, abs=1e-5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def x(limit, remaining, reset) -> dict:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sharing(tmp_path: Path, clock: Clock):
    """`sharing(n, **options)`: n throttles sharing one budget folder, each with its own file
    descriptor and holder id (flock tells them apart as it tells processes apart)."""
    opened: list[Throttle] = []

    def start(count: int = 2, warn=None, max_wait: float = 60.0, **options) -> list[Throttle]:
        for _ in range(count):
            shared = SharedBudget(tmp_path / "budgets", API, CLIENT_ID, LEASE)
            opened.append(Throttle(max_wait=max_wait, warn=warn, clock=clock, wall_clock=lambda: NOW + clock.now,
                                   shared=shared, **options))
        return opened[-count:]

    yield start
    for throttle in opened:
        throttle.close()


def go(throttle: Throttle):
    """A request let through at once (acquire would block otherwise: here that is a failure)."""
    assert throttle.delay() == 0
    return throttle.acquire()


def stored(tmp_path: Path) -> dict:
    (path,) = (tmp_path / "budgets").iterdir()
    return json.loads(path.read_bytes())


def rewrite(tmp_path: Path, **changes) -> None:
    (path,) = (tmp_path / "budgets").iterdir()
    state = {**json.loads(path.read_bytes()), **changes}
    path.write_bytes(json.dumps(state).encode())


# --- what one learns holds for the other ---------------------------------------------------------


def test_a_retry_after_seen_by_one_pauses_the_other(sharing, clock):
    a, b = sharing(2)
    a.release(go(a), 429, {}, retry_after=2.0)
    assert b.delay() == approx(2.0), "the API asked the client to wait: every process waits"
    clock.now += 1.5
    assert b.delay() == approx(0.5)
    clock.now += 0.5
    go(b)


def test_an_announced_limit_learnt_by_one_paces_both(sharing, clock):
    """Ten requests a second, learnt from A's first answer: B's next start is a tenth of a second
    after A's; the two spend one window's budget of ten between them, then both wait for its reset."""
    a, b = sharing(2)
    first = go(a)
    clock.now += 0.01
    a.release(first, 200, x(10, 9, 1))  # this request opened a window of 10 requests a second
    assert b.delay() == approx(0.09) and b.interval == approx(0.1)
    for i, remaining in enumerate(range(8, -1, -1)):  # nine more, in turn from B and A, each at its slot
        limiter = b if i % 2 == 0 else a
        clock.now += limiter.delay()
        ticket = go(limiter)
        assert a.delay() > 0 and b.delay() > 0, "a start is a slot for both"
        limiter.release(ticket, 200, x(10, remaining, 1))
    assert clock.now == approx(1000.9)
    # The window's budget is spent by the two together: neither goes before it has reset.
    assert a.delay() == approx(1000.01 + 1 - 1000.9) and b.delay() == approx(a.delay())
    clock.now = 1001.01
    go(a)


def test_requests_in_flight_in_one_count_against_the_budget_of_the_other(sharing, clock):
    """Five a second; A's first answer says four remain; A sends two and B two, none answered: the
    window's budget is spent, so B does not send a fifth."""
    a, b = sharing(2)
    first = go(a)
    clock.now += 0.01
    a.release(first, 200, x(5, 4, 1))
    for limiter in (a, a, b, b):
        clock.now += limiter.delay()
        go(limiter)
    assert b.delay() == approx(1000.01 + 1 - clock.now)


def test_the_ceiling_holds_for_both_together(sharing, clock):
    """ANALYTICS_MAX_REQUESTS_PER_SECOND=4 in both: four starts a second in all, not four each."""
    a, b = sharing(2, max_per_second=4.0)
    starts = []
    for i in range(8):
        limiter = (a, b)[i % 2]
        clock.now += limiter.delay()
        limiter.release(go(limiter), 200, {})
        starts.append(clock.now)
    spans = [later - earlier for earlier, later in zip(starts, starts[1:])]
    assert min(spans) == approx(0.25 * 1.01)


def test_after_a_429_the_allowance_in_flight_is_shared(sharing, clock):
    """A 429 to A: one request in flight at a time, in all. B's waits for A's; then, one success
    later, two may be in flight (one each)."""
    a, b = sharing(2, max_in_flight=4)
    a.release(go(a), 429, {})
    first = go(a)
    assert b.delay() == math.inf, "A's one request in flight is all that may be"
    a.release(first, 200, {})
    go(b)
    go(a)
    assert a.delay() == math.inf and b.delay() == math.inf


def test_syncs_starting_together_start_with_one_syncs_allowance(sharing, clock):
    """Two syncs of ANALYTICS_MAX_CONCURRENCY 2 against an API that has said nothing yet: two in
    flight in all, as one sync would have, so that a silent limiter refuses no more than it would
    one sync; the allowance grows by one per round of successes."""
    a, b = sharing(2, max_in_flight=2)
    held = [go(a), go(b)]
    assert a.delay() == math.inf and b.delay() == math.inf
    for ticket, limiter in zip(held, (a, b)):
        limiter.release(ticket, 200, {})
    go(a), go(a), go(b)  # a round of two successes: three in flight in all
    assert a.delay() == math.inf and b.delay() == math.inf


def test_a_retry_waiting_in_one_goes_before_first_attempts_of_the_other(sharing, clock):
    """A's second attempt waits out a pause; when it ends, B's first attempt, free to go by the
    pace, lets A's retry go first (B would otherwise: A's waiting thread looks again only later)."""
    a, b = sharing(2)
    a.release(go(a), 429, {}, retry_after=0.5)
    granted: list[tuple[int, str]] = []

    def request(limiter: Throttle, name: str, priority: int) -> None:
        ticket = limiter.acquire(priority)
        granted.append((ticket.seq, name))
        limiter.release(ticket, 200, {})

    retry = threading.Thread(target=request, args=(a, "retry in A", 2))
    retry.start()
    assert wait_until(lambda: waiting_priority(a) == 2), "A's retry did not tell the others it waits"
    clock.now += 0.5  # the pause is over
    first = threading.Thread(target=request, args=(b, "first attempt in B", 1))
    first.start()
    for thread in (retry, first):
        thread.join(10)
    assert [name for _, name in sorted(granted)] == ["retry in A", "first attempt in B"]


def waiting_priority(throttle: Throttle) -> int:
    """The priority of the request the throttle told the others is waiting (0: none)."""
    with throttle._condition:
        entry = throttle._waiting.get(throttle.owner)
        return entry[0] if entry else 0


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# --- nothing left behind holds anyone up -------------------------------------------------------


def gone_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_requests_of_a_process_that_is_gone_no_longer_count(sharing, clock, tmp_path):
    """A process killed with a request in flight, after a 429 (one in flight at a time): its request
    no longer holds the others, its pid being gone; a request of a live process still does."""
    a, b = sharing(2, max_in_flight=4)
    a.release(go(a), 429, {})
    go(a)
    assert b.delay() == math.inf
    state = stored(tmp_path)
    namespace = os.readlink("/proc/self/ns/pid")
    (seq, (owner, sent)), = state["in_flight"].items()
    rewrite(tmp_path, in_flight={seq: [f"{namespace}/{gone_pid()}/dead", sent]})
    assert b.delay() == 0


def test_a_request_out_longer_than_any_may_be_no_longer_counts(sharing, clock):
    """A request of a process that is alive (or unseen: another container's) and never answered
    counts for as long as a request may be out, no longer."""
    a, b = sharing(2, max_in_flight=4, max_wait=3600.0)
    a.release(go(a), 429, {})
    go(a)  # never released: a process that hangs, or another container's
    clock.now += LEASE - 1
    assert b.delay() == math.inf
    clock.now += 2
    assert b.delay() == 0


def test_a_stale_state_does_not_block(sharing, clock, tmp_path):
    """A pause and a spent window left by a process that is gone (or whose clock was wrong): no wait
    read from the file is longer than ANALYTICS_MAX_RETRY_WAIT, and a state nobody has written
    for longer than that is read as new."""
    a, = sharing(1)
    a.release(go(a), 200, {})
    wall = NOW + clock.now
    rewrite(tmp_path, paused_until=wall + 86_400, budget={
        "limit": 10, "window": 1.0, "trusted": True, "longest": 1.0, "window_from": 0, "remaining": 0,
        "reset_at": None, "opened": None})
    b, = sharing(1, max_wait=30.0)
    assert b.delay() == approx(30.0), "a pause a day long is cut to the longest wait"
    rewrite(tmp_path, updated=wall - 31, paused_until=wall + 86_400)
    assert b.delay() == 0, "nobody has written it for longer than any wait: every pause has ended"


def test_a_torn_file_is_written_whole_again(sharing, clock, tmp_path):
    """A process killed while writing leaves half a state: it reads as none, and the next
    decision writes the whole state again."""
    a, = sharing(1)
    a.release(go(a), 429, {}, retry_after=2.0)
    (path,) = (tmp_path / "budgets").iterdir()
    path.write_bytes(path.read_bytes()[:40])
    assert a.delay() == approx(2.0)  # what this throttle knew
    assert stored(tmp_path)["paused_until"] == approx(NOW + clock.now + 2.0)


# --- one budget per API and client, and nothing secret in it ----------------------------------------


def test_one_file_per_origin_and_client_naming_neither_credential(tmp_path):
    folder = tmp_path / "budgets"
    budgets = [SharedBudget(folder, API, CLIENT_ID, LEASE), SharedBudget(folder, API, CLIENT_ID, LEASE),
               SharedBudget(folder, API, "another-client", LEASE),
               SharedBudget(folder, Origin("https", "api.example.com", 8443), CLIENT_ID, LEASE)]
    try:
        assert len({b.path for b in budgets}) == 3 and budgets[0].path == budgets[1].path
        limiter = Throttle(max_wait=60.0, shared=budgets[0])
        limiter.release(limiter.acquire(), 200, x(10, 9, 1))
        text = budgets[0].path.read_text()
        assert CLIENT_ID not in text and CLIENT_ID not in budgets[0].path.name
        assert json.loads(text)["origin"] == "https://api.example.com:443"
        assert json.loads(text)["identity"] == identity(API, CLIENT_ID)
        assert folder.stat().st_mode & 0o777 == 0o700 and budgets[0].path.stat().st_mode & 0o777 == 0o600
    finally:
        for budget in budgets:
            budget.close()


# --- a budget that cannot be used ------------------------------------------------------------------------


def test_a_lock_held_too_long_leaves_the_sync_pacing_alone_and_saying_so(tmp_path, clock):
    warnings: list[str] = []
    shared = SharedBudget(tmp_path / "budgets", API, CLIENT_ID, LEASE, lock_wait=0.1)
    limiter = Throttle(max_wait=60.0, warn=warnings.append, clock=clock, shared=shared)
    limiter.release(go(limiter), 429, {}, retry_after=2.0)
    stuck = os.open(shared.path, os.O_RDWR)  # a process stopped while holding the lock
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)
        assert limiter.delay() == approx(2.0), "what it knew still holds"
        assert not limiter.shared
        assert len(warnings) == 1 and "held its lock for more than 0.1 s" in warnings[0]
        assert "budget of its own" in warnings[0] and str(shared.path) in warnings[0]
        clock.now += 2.0
        limiter.release(go(limiter), 200, {})
    finally:
        os.close(stuck)
        limiter.close()


def test_a_folder_that_cannot_be_written_leaves_the_sync_pacing_alone_and_saying_so(tmp_path):
    (tmp_path / "a-file").write_text("")
    warnings: list[str] = []
    said: list[str] = []
    assert open_shared_budget(tmp_path / "a-file" / "budgets", API, CLIENT_ID, LEASE, warnings.append, said.append) is None
    assert len(warnings) == 1 and "cannot be written" in warnings[0] and "ANALYTICS_RATE_BUDGET_DIR" in warnings[0]
    assert said == []


def test_without_a_folder_the_sync_paces_alone_and_says_so():
    said: list[str] = []
    assert open_shared_budget(None, API, CLIENT_ID, LEASE, pytest.fail, said.append) is None
    assert len(said) == 1 and "paced by this sync alone" in said[0]
