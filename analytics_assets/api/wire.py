"""What the HTTP libraries leave unbounded in one exchange, bounded at their own seams.

urllib3's timeouts bound each read, not an exchange: a server answering a byte every half second,
or `100 Continue` as fast as it is read, keeps every read short and the request going forever.
http.client skips interim (1xx) answers without counting them, and reads and discards a chunked
trailer however long it is, after a body that is complete. So:

- `deadline(seconds)`: the request's deadline, from its start. When it passes, a watchdog thread
  shuts the request's socket down, which ends whatever read is under way, whatever the server
  sends and however fast each read returns: a timer, not a check between reads.
- `WatchedPools`: urllib3 connection pools whose connections hand their socket to the current
  request's deadline as soon as it is connected (before TLS, so a dripped handshake is cut too),
  and again with every response (a pooled connection serves several requests).
- `BoundedResponse`: http.client's response (its `response_class` seam) counting interim answers
  (at most MAX_INTERIM) and the trailer's bytes (at most MAX_TRAILER_BYTES): beyond either,
  `Unbounded` names what was exceeded.

The name resolution before connecting is the system resolver's and is not cut by the deadline.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import socket
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Optional

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_INTERIM = 5  # interim (1xx) answers before the final one: a server needs one or two
MAX_TRAILER_BYTES = 64 * 1024  # a chunked body's trailer section (field lines after the last chunk)


class Unbounded(Exception):
    """The server sent more than a bound of the exchange allows (not an http.client error, so that
    neither urllib3 nor requests takes it for a broken connection to retry)."""


class Deadline:
    """One request's deadline. The socket `watch`ed last is shut down when it passes (at once, if it
    had passed already); `expired` then says why the request's reads ended."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._socket: Optional[socket.socket] = None
        self._over = False

    @property
    def over(self) -> bool:
        return self._over

    def watch(self, sock: socket.socket) -> None:
        """From now on passing the deadline shuts `sock` down. A duplicate of its descriptor is
        kept: it stays valid when TLS takes the socket over, and shutting it down ends the
        connection for every descriptor of it, TLS's included, without touching TLS's state."""
        duplicate = socket.fromfd(sock.fileno(), sock.family, sock.type)
        with self._lock:
            if self._over:
                previous = duplicate
            else:
                previous, self._socket = self._socket, duplicate
                if self.expired:
                    _shut(duplicate)
        if previous is not None:
            previous.close()

    def expire(self) -> None:
        """The watchdog's call when the deadline passes."""
        with self._lock:
            if self._over:
                return
            self.expired = True
            if self._socket is not None:
                _shut(self._socket)

    def end(self) -> None:
        """The request is over: nothing is shut down after this."""
        with self._lock:
            self._over = True
            watched, self._socket = self._socket, None
        if watched is not None:
            watched.close()  # the duplicate only: the connection stays open for the pool


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the other side or by urllib3


class _Watchdog:
    """One thread for every deadline of the process, sleeping until the nearest one (a timer thread
    per request would cost about 0.1 ms each). Deadlines that ended stay queued until their time,
    then are dropped."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._compact_at = 1024

    def add(self, deadline: Deadline) -> None:
        with self._wakeup:
            if len(self._queue) >= self._compact_at:  # drop the ended ones, now and then
                self._queue = [entry for entry in self._queue if not entry[2].over]
                heapq.heapify(self._queue)
                self._compact_at = max(1024, 2 * len(self._queue))
            heapq.heappush(self._queue, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="analytics-request-deadlines", daemon=True)
                self._thread.start()
            if self._queue[0][2] is deadline:
                self._wakeup.notify()

    def _run(self) -> None:
        with self._wakeup:
            while True:
                if not self._queue:
                    self._wakeup.wait()
                    continue
                at, _, deadline = self._queue[0]
                now = time.monotonic()
                if at > now:
                    self._wakeup.wait(at - now)
                    continue
                heapq.heappop(self._queue)
                deadline.expire()


_WATCHDOG = _Watchdog()
_CURRENT: ContextVar[Optional[Deadline]] = ContextVar("analytics_request_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """The deadline of the request made inside the block (in this thread): the connections of
    `WatchedPools` hand it their socket."""
    current = Deadline(seconds)
    token = _CURRENT.set(current)
    _WATCHDOG.add(current)
    try:
        yield current
    finally:
        current.end()
        _CURRENT.reset(token)


def _watch(sock: socket.socket) -> None:
    current = _CURRENT.get()
    if current is not None:
        current.watch(sock)


class BoundedResponse(http.client.HTTPResponse):
    """http.client's response with the bounds it lacks: interim answers are counted (every 1xx is
    skipped, not only 100 Continue: a 103 taken for the final answer would read as an empty page),
    and the trailer after a chunked body is read within MAX_TRAILER_BYTES. It hands its socket to
    the request's deadline before it reads a byte."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: Optional[str] = None,
                 url: Optional[str] = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        _watch(sock)
        self.interim_answers = 0

    def _read_status(self) -> tuple[str, int, str]:
        """The next status line, skipping interim answers (http.client's `begin` skips the headers of
        a 100 itself)."""
        while True:
            version, status, reason = super()._read_status()
            if not 100 <= status < 200:
                return version, status, reason
            self.interim_answers += 1
            if self.interim_answers > MAX_INTERIM:
                self._close_conn()
                raise Unbounded(f"sent more than {MAX_INTERIM} interim (1xx) answers before its answer")
            if status == http.client.CONTINUE:
                return version, status, reason
            http.client.parse_headers(self.fp)  # another 1xx: its headers, skipped here

    def _read_and_discard_trailer(self) -> None:
        """The trailer's field lines, discarded as http.client does, but no more than
        MAX_TRAILER_BYTES of them: a body that is complete would otherwise wait on any length."""
        size = 0
        while True:
            line = self.fp.readline(MAX_TRAILER_BYTES + 1)
            size += len(line)
            if size > MAX_TRAILER_BYTES:
                self._close_conn()
                raise Unbounded(f"sent a chunked trailer of more than {MAX_TRAILER_BYTES:,} bytes after its body")
            if line in (b"\r\n", b"\n", b""):
                return


class _Watched:
    """A urllib3 connection whose responses are `BoundedResponse`s (http.client's `response_class`)
    and whose socket the current request's deadline watches from the moment it is connected."""

    response_class = BoundedResponse

    def _new_conn(self) -> socket.socket:  # the seam urllib3's own SOCKS connection extends
        sock = super()._new_conn()  # type: ignore[misc]
        _watch(sock)  # before any TLS handshake: a dripped handshake is cut as well
        return sock


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


WatchedPools: dict[str, Any] = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}
