"""Rate limits through real Dagster runs against the demo API's limiter: a limit announced in
headers is never exceeded, a silent limiter never fails a run, a 429's Retry-After pauses every
request of the run, and ANALYTICS_MAX_REQUESTS_PER_SECOND holds.

The limits here are small enough that a run paging as fast as the API answers would be refused
(or, for the silent limiter, fail), and the runs short; the performance figures are measured by
benchmarks/rate_limits.py, not here."""

from __future__ import annotations

import pytest

from analytics_assets_tests.reliability.conftest import meta

DAY = "2026-11-19"  # with days=1, every record of the API is on this day


@pytest.mark.parametrize("headers, reset", [("x", "delta"), ("x", "epoch"), ("ietf", "delta")])
def test_an_announced_limit_is_never_exceeded(harness_for, headers: str, reset: str) -> None:
    """31 requests against 20 a second, with 8 in flight: every row lands, no request is refused."""
    harness = harness_for(records=3000, days=1, rate_limit=20, rate_limit_headers=headers, rate_limit_reset=reset)
    result = harness.run(DAY)
    harness.succeeded(result, DAY)
    assert harness.api.rate_limited == 0
    assert meta(result, "run_retries") == 0
    assert meta(result, "run_seconds_waited_on_rate_limit") > 0


def test_a_silent_limiter_does_not_fail_a_run_of_32_requests_in_flight(harness_for, monkeypatch) -> None:
    """5 requests a second, said only by 429s and their Retry-After: 32 requests at once would
    be refused again and again (the code before the limiter failed here after four 429s for one
    page); paused together and resumed one at a time, retries first, none runs out of retries."""
    monkeypatch.setenv("ANALYTICS_MAX_CONCURRENCY", "32")
    harness = harness_for(records=2000, days=1, rate_limit=5)
    result = harness.run(DAY)
    harness.succeeded(result, DAY)
    assert harness.api.rate_limited > 0  # the limiter did speak


def test_a_retry_after_pauses_every_request_of_the_run(harness_for, monkeypatch) -> None:
    """Four requests in flight; one is answered 429 with Retry-After: 2, the next one 429 with
    Retry-After: 1. The server asked the client to wait two seconds: nothing reaches it before
    they are over, not even the second page's retry, which its own Retry-After would have sent
    after one second."""
    monkeypatch.setenv("ANALYTICS_MAX_CONCURRENCY", "4")
    harness = harness_for(records=2500, days=1)  # 26 pages
    harness.api.faults.queue("status", status=429, retry_after=2, after=5)
    harness.api.faults.queue("status", status=429, retry_after=1, after=6)
    result = harness.run(DAY)
    harness.succeeded(result, DAY)
    arrivals = harness.api.request_times
    refused = arrivals[5]  # the sixth request to arrive is the first one answered 429
    # Requests sent before the 429 reached the client arrive within a few ms; none after.
    during = [round(t - refused, 3) for t in arrivals if refused + 0.1 <= t <= refused + 1.9]
    assert during == [], f"requests arrived during the pause, at these seconds after the 429: {during}"
    assert len([t for t in arrivals if t > refused + 1.9]) >= 15, "the run went on after the pause"
    assert meta(result, "run_retries") == 2


def test_the_ceiling_holds(harness_for, monkeypatch) -> None:
    """ANALYTICS_MAX_REQUESTS_PER_SECOND=50 against an API that sets no limit of its own."""
    monkeypatch.setenv("ANALYTICS_MAX_REQUESTS_PER_SECOND", "50")
    harness = harness_for(records=2000, days=1)  # 21 requests
    result = harness.run(DAY)
    harness.succeeded(result, DAY)
    arrivals = harness.api.request_times
    assert len(arrivals) == 21
    # Starts are at least 20 ms apart; arrivals may bunch by a little jitter, never by a request.
    spans = [later - earlier for earlier, later in zip(arrivals, arrivals[5:])]
    assert min(spans) >= 5 / 50 - 0.01, f"five intervals took {min(spans):.3f} s, less than 0.1 s"
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) <= 50
    assert meta(result, "run_seconds_waited_on_rate_limit") > 0
