"""The rate limiter: the headers it believes, the pace and the pauses it sets, and a sync against
the demo API's limiter that is never refused."""

from __future__ import annotations

import math
import threading
import time

import pytest

from analytics_assets.api.throttle import Throttle, read_limit
from analytics_assets.errors import RetriesExhausted
from analytics_assets_tests.conftest import assert_table_matches, settings_for

NOW = 1_800_000_000.0  # the wall clock of the header tests


def x(limit, remaining, reset) -> dict:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}


def ietf(limit, remaining, reset) -> dict:
    return {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset)}


# --- reading the headers ---------------------------------------------------------------------------


def test_x_ratelimit_headers_with_a_delta_reset():
    announced = read_limit(x(10, 3, 2), NOW)
    assert (announced.limit, announced.remaining, announced.reset, announced.epoch) == (10, 3, 2.0, False)
    assert announced.whole_seconds and announced.window is None


@pytest.mark.parametrize("value, seconds", [(NOW + 5, 5.0), ((NOW + 5) * 1000, 5.0), (NOW - 30, 0.0)])
def test_an_epoch_reset_is_told_from_a_delay_by_its_magnitude(value, seconds):
    """Seconds since 1970 (or milliseconds), not seconds to wait; one already past means now."""
    announced = read_limit(x(10, 0, int(value)), NOW)
    assert announced.epoch and announced.reset == pytest.approx(seconds)


def test_ietf_headers_their_list_form_and_window_parameter():
    announced = read_limit(ietf(10, 9, 1), NOW)
    assert (announced.limit, announced.remaining, announced.reset, announced.family) == (10, 9, 1.0, "RateLimit-")
    listed = read_limit({**ietf("100, 100;w=60, 1000;w=3600", 40, 7)}, NOW)
    assert (listed.limit, listed.window) == (100, 60.0)
    policy = read_limit({**ietf(10, 9, 1), "RateLimit-Policy": "10;w=1"}, NOW)
    assert policy.window == 1.0


def test_names_are_case_insensitive_and_the_ietf_family_wins():
    headers = {"x-ratelimit-limit": "50", "X-RATELIMIT-REMAINING": "1", "x-RateLimit-reset": "3",
               "ratelimit-limit": "10", "ratelimit-remaining": "9", "ratelimit-reset": "1"}
    assert read_limit(headers, NOW).limit == 10
    del headers["ratelimit-reset"]  # an incomplete family announces nothing: the other one counts
    assert read_limit(headers, NOW).limit == 50


@pytest.mark.parametrize("headers", [{}, {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "3"},
                                     {"RateLimit-Limit": "10", "RateLimit-Reset": "1"}])
def test_no_complete_family_announces_nothing(headers):
    assert read_limit(headers, NOW) is None


@pytest.mark.parametrize("limit, remaining, reset", [
    ("0", "0", "1"), ("-5", "0", "1"), ("ten", "3", "1"), ("nan", "3", "1"), ("inf", "3", "1"),
    ("1e12", "3", "1"), ("2.5", "1", "1"), ("10", "1.5", "1"), ("10", "-1", "1"), ("10", "3", "-1"),
    ("10", "3", "soon"), ("10", "3", "inf"),
])
def test_values_that_cannot_be_a_limit_are_refused(limit, remaining, reset):
    with pytest.raises(ValueError, match="X-RateLimit-"):
        read_limit(x(limit, remaining, reset), NOW)


def test_remaining_above_the_limit_is_read_as_the_limit():
    assert read_limit(x(10, 500, 1), NOW).remaining == 10


# --- pacing, on a clock the test moves ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter_on(clock: Clock, wall: float = NOW, **options) -> tuple[Throttle, list[str]]:
    warnings: list[str] = []
    options = {"max_wait": 60.0, "warn": warnings.append, **options}
    return Throttle(clock=clock, wall_clock=lambda: wall + clock.now, **options), warnings


def go(limiter: Throttle):
    """A request let through at once (acquire would block otherwise: here that is a failure)."""
    assert limiter.delay() == 0
    return limiter.acquire()


def test_an_announced_limit_sets_the_pace_and_the_window_budget():
    clock = Clock()
    limiter, _ = limiter_on(clock)
    first = go(limiter)
    clock.now += 0.01
    limiter.release(first, 200, x(10, 9, 1))  # this request opened a window of 10 requests a second
    assert limiter.interval == pytest.approx(0.1)
    assert limiter.delay() == pytest.approx(0.09)
    for remaining in range(8, -1, -1):  # nine more, each at its slot, each answered at once
        clock.now += limiter.delay()
        ticket = go(limiter)
        limiter.release(ticket, 200, x(10, remaining, 1))
    # Ten requests in 0.9 s: the budget is spent; the window ends one second after the answer
    # that opened it (not at the next slot, 1.0 s, nor a whole second from now, as Reset says).
    assert clock.now == pytest.approx(1000.9)
    assert limiter.delay() == pytest.approx(1000.01 + 1 - 1000.9)
    clock.now = 1001.01
    assert limiter.delay() == 0  # a new window: a full budget


def test_requests_in_flight_count_against_the_budget():
    """Answers slower than the pace: the budget is the newest Remaining less what went since."""
    clock = Clock()
    limiter, _ = limiter_on(clock)
    first = go(limiter)
    clock.now += 0.2
    limiter.release(first, 200, x(5, 4, 1))
    for _ in range(4):  # the other four of the window, none answered yet
        clock.now += limiter.delay()
        go(limiter)
    assert limiter.delay() == pytest.approx(1000.2 + 1 - clock.now)


def test_answers_out_of_order_leave_the_least_remaining_and_count_what_is_unanswered():
    """Concurrent requests reach the API in another order than they were sent. Four go on a budget
    of four; the last one sent is counted first (3 remain), the first one last (0 remain): neither
    the newest request's answer nor the newest answer is the API's count."""
    clock = Clock()
    limiter, _ = limiter_on(clock)
    first = go(limiter)
    clock.now += 0.01
    limiter.release(first, 200, x(60, 4, 3))  # another client spent 55 of this window
    tickets = [go(limiter) for _ in range(4)]
    assert limiter.delay() > 0
    clock.now += 0.01
    limiter.release(tickets[3], 200, x(60, 3, 3))
    assert limiter.delay() > 0, "three requests sent before it are unanswered: they may still count"
    for ticket, remaining in zip(tickets[:3], (0, 2, 1)):
        limiter.release(ticket, 200, x(60, remaining, 3))
        assert limiter.delay() == pytest.approx(1000.01 + 3 - clock.now)  # the earliest end announced


def test_an_older_windows_opening_does_not_shorten_a_later_window():
    """Another client spent this window's budget before us, so no answer of ours opened it: the
    reset is the one announced, not one second after the opening of a window long gone."""
    clock = Clock()
    limiter, _ = limiter_on(clock)
    first = go(limiter)
    clock.now += 0.01
    limiter.release(first, 200, x(10, 9, 1))
    clock.now = 1001.5
    ticket = go(limiter)
    clock.now += 0.01
    limiter.release(ticket, 200, x(10, 0, 1))
    assert limiter.delay() == pytest.approx(1.0)


def test_a_reset_announced_later_than_the_estimated_window_wins():
    """A window estimated at 1 s, then a reset three seconds away: the API's word wins."""
    clock = Clock()
    limiter, _ = limiter_on(clock)
    first = go(limiter)
    clock.now += 0.01
    limiter.release(first, 200, x(10, 9, 1))
    clock.now += limiter.delay()
    limiter.release(go(limiter), 200, x(10, 0, 3))
    assert limiter.delay() == pytest.approx(3.0)


def test_an_epoch_reset_is_read_to_the_whole_second():
    """An epoch counts the wall clock's seconds: a window opened at .3 past a second 'resets' 1.7 s
    later; the API's window is read as 1 s, not 1.7, which would pace at 59% of its limit."""
    clock = Clock()
    limiter, _ = limiter_on(clock, wall=NOW + 0.3 - 1000.0)  # the wall clock reads NOW + 0.3 now
    first = go(limiter)
    clock.now += 0.005
    limiter.release(first, 200, x(10, 9, int(NOW) + 2))
    assert limiter.window == 1.0 and limiter.interval == pytest.approx(0.1)


def test_a_429_under_an_announced_limit_reads_the_window_as_long_as_announced():
    clock = Clock()
    limiter, _ = limiter_on(clock, wall=NOW + 0.3 - 1000.0)
    first = go(limiter)
    limiter.release(first, 200, x(10, 9, int(NOW) + 2))
    clock.now += limiter.delay()
    second = go(limiter)
    limiter.release(second, 429, x(10, 0, int(NOW) + 2))
    assert limiter.window == pytest.approx(1.7)


def test_a_reset_beyond_the_cap_waits_the_cap_and_says_so():
    clock = Clock()
    limiter, warnings = limiter_on(clock, max_wait=5.0)
    limiter.release(go(limiter), 200, x(1, 0, 86_400))  # one request a day, and it is spent
    assert limiter.delay() == pytest.approx(5.0)
    clock.now += 5.0
    limiter.release(go(limiter), 200, x(1, 0, 86_395))
    assert limiter.delay() == pytest.approx(5.0)
    assert len(warnings) == 1 and "resets in 86400 s" in warnings[0] and "ANALYTICS_MAX_RETRY_WAIT=5" in warnings[0]


def test_implausible_headers_are_ignored_with_one_warning():
    clock = Clock()
    limiter, warnings = limiter_on(clock)
    for _ in range(3):
        limiter.release(go(limiter), 200, x(0, 0, 3600))
    assert limiter.delay() == 0 and limiter.interval == 0
    assert len(warnings) == 1 and "X-RateLimit-Limit" in warnings[0]


def test_retry_after_pauses_every_request_within_the_cap():
    clock = Clock()
    limiter, warnings = limiter_on(clock, max_wait=30.0)
    limiter.release(go(limiter), 503, {}, retry_after=2.0)
    assert limiter.delay() == pytest.approx(2.0)
    clock.now += 2.0
    limiter.release(go(limiter), 429, {}, retry_after=3600.0)
    assert limiter.delay() == pytest.approx(30.0)
    assert warnings == []  # the transport reports a Retry-After beyond the cap, once per answer


def test_a_pause_of_more_than_a_second_is_said_with_its_cause():
    """On the real clock (the requests below wait the pauses out): a Retry-After's pause and a spent
    budget's are said, each once; a pause under a second is not."""
    said: list[str] = []
    limiter = Throttle(max_wait=30.0, say=said.append)
    limiter.release(limiter.acquire(), 503, {}, retry_after=0.3)
    limiter.release(limiter.acquire(), 429, {}, retry_after=1.3)
    limiter.release(limiter.acquire(), 200, x(2, 0, 2))  # a limit of 2, spent: resets in 2 s
    limiter.acquire()
    assert len(said) == 2, said
    assert said[0].startswith("waiting 1.") and said[0].endswith(
        " s before the next request: the server asked the client to wait (Retry-After)."), said
    assert said[1].startswith("waiting ") and said[1].endswith(
        " s before the next request: the API's announced rate limit (2 requests a window) is spent until its "
        "window resets."), said


def test_after_a_429_requests_resume_one_at_a_time_and_grow_back():
    clock = Clock()
    limiter, _ = limiter_on(clock, max_in_flight=4)
    limiter.release(go(limiter), 429, {})
    first = go(limiter)
    assert limiter.delay() == math.inf  # one in flight: the others wait for its answer
    limiter.release(first, 200, {})
    a, b = go(limiter), go(limiter)  # one success: two at a time
    assert limiter.delay() == math.inf
    limiter.release(a, 200, {})
    limiter.release(b, 200, {})
    tickets = [go(limiter) for _ in range(3)]  # two more successes: three at a time
    assert limiter.delay() == math.inf
    for ticket in tickets:
        limiter.release(ticket, 200, {})
    allowed = [go(limiter) for _ in range(4)]  # grown back to ANALYTICS_MAX_CONCURRENCY, and no further
    assert limiter.allowed_in_flight == 4 and limiter.delay() == math.inf
    limiter.release(allowed[0], 200, {})
    go(limiter)


def test_requests_in_flight_never_exceed_the_concurrency():
    """Counted, not timed: with four in flight the fifth waits for an answer, whatever the pace."""
    clock = Clock()
    limiter, _ = limiter_on(clock, max_in_flight=4)
    tickets = [go(limiter) for _ in range(4)]
    assert limiter.delay() == math.inf
    limiter.release(tickets[0], 500, {})  # an answer, even a failure, frees its place
    go(limiter)
    assert limiter.delay() == math.inf


def test_the_ceiling_spaces_requests_with_a_little_to_spare():
    clock = Clock()
    limiter, _ = limiter_on(clock, max_per_second=4.0)
    go(limiter)
    assert limiter.delay() == pytest.approx(0.25 * 1.01)
    clock.now += limiter.delay()
    limiter.release(go(limiter), 200, x(100, 99, 1))
    assert limiter.interval == pytest.approx(0.25 * 1.01)  # a faster announced limit does not lift it


# --- threads ------------------------------------------------------------------------------------------


def test_waiting_requests_go_retries_first_then_in_arrival_order():
    limiter = Throttle(max_wait=5.0)
    limiter.release(limiter.acquire(), 429, {})  # from now on one request in flight at a time
    holder = limiter.acquire()
    granted: list[tuple[int, str]] = []

    def request(name: str, priority: int) -> None:
        ticket = limiter.acquire(priority)
        granted.append((ticket.seq, name))
        limiter.release(ticket, 200, {})

    threads = []
    for name, priority in (("first", 1), ("second", 1), ("third", 1), ("retry", 2)):
        threads.append(threading.Thread(target=request, args=(name, priority)))
        threads[-1].start()
        assert wait_until(lambda: limiter.waiting == len(threads)), "a request did not queue"
    limiter.release(holder, 200, {})
    for thread in threads:
        thread.join(10)
    assert [name for _, name in sorted(granted)] == ["retry", "first", "second", "third"]


def wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


# --- against the demo API's limiter --------------------------------------------------------------------


@pytest.mark.parametrize("headers, reset", [("x", "delta"), ("x", "epoch"), ("ietf", "delta")])
def test_a_sync_under_an_announced_limit_is_never_refused(make_api, syncer, headers, reset):
    """31 requests against 20 a second: sent as fast as the API answers, a third would be refused."""
    api = make_api(records=3000, days=1, rate_limit=20, rate_limit_headers=headers, rate_limit_reset=reset)
    stats = syncer.run(api, settings=settings_for(api, max_concurrency=8))
    assert_table_matches(syncer.db, api.all_records())
    assert api.rate_limited == 0
    assert stats.rate_limit_wait_seconds > 0 and stats.retries == 0


def test_a_budget_another_client_spent_is_respected(make_api, syncer):
    """Another client took 55 of the window's 60 requests: the sync's first answer says 4 remain
    (and, opening no window, nothing of its length). The sync sends those four, then waits for
    the announced reset."""
    import requests

    api = make_api(records=3000, days=1, rate_limit=20, rate_limit_window=3, rate_limit_headers="x")
    with requests.Session() as other:
        for _ in range(55):
            assert other.get(api.resource_url).status_code == 401  # counted by the limiter in front
    stats = syncer.run(api, settings=settings_for(api, max_concurrency=8))
    assert_table_matches(syncer.db, api.all_records())
    assert api.rate_limited == 0
    assert stats.rate_limit_wait_seconds > 0


def test_the_ceiling_holds_against_an_api_without_limits(make_api, syncer):
    api = make_api(records=1500, days=1)
    stats = syncer.run(api, settings=settings_for(api, max_concurrency=8, max_requests_per_second=50))
    assert_table_matches(syncer.db, api.all_records())
    arrivals = api.request_times
    assert len(arrivals) == 16
    # Starts are 20 ms apart at least; arrivals may bunch by a little network jitter.
    assert all(later - earlier >= 4 / 50 - 0.01 for earlier, later in zip(arrivals, arrivals[4:]))
    assert stats.rate_limit_wait_seconds > 0


def test_a_reset_a_thousand_seconds_away_does_not_hang_the_run(make_api, syncer):
    """An API announcing a window of 10 requests per 1,000 s: each wait is cut to
    ANALYTICS_MAX_RETRY_WAIT, the run ends (failing, once the retries meet the API's 429s) and
    says why."""
    api = make_api(records=1500, days=1, rate_limit=0.01, rate_limit_window=1000, rate_limit_headers="x")
    warnings: list[str] = []
    started = time.monotonic()
    with pytest.raises(RetriesExhausted, match="HTTP 429"):
        syncer.run(api, settings=settings_for(api, max_retry_wait=0.5), warn=warnings.append)
    assert time.monotonic() - started < 30
    assert any("resets in 1000 s" in w and "ANALYTICS_MAX_RETRY_WAIT=0.5" in w for w in warnings), warnings
