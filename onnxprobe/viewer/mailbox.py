"""A one-slot mailbox: the newest item wins, older ones are dropped, never queued."""

from __future__ import annotations

import threading

_EMPTY = object()


class Closed(Exception):
    """The mailbox was closed: the worker reading it should stop."""


class Mailbox:
    def __init__(self):
        self._cond = threading.Condition()
        self._item = _EMPTY
        self._closed = False
        self.dropped = 0  # items replaced before anyone took them

    def put(self, item) -> None:
        with self._cond:
            if self._item is not _EMPTY:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float | None = None):
        """The newest item (blocking until there is one); None after `timeout`; Closed once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._item is not _EMPTY, timeout):
                return None
            if self._closed:
                raise Closed()
            item, self._item = self._item, _EMPTY
            self._cond.notify_all()  # wakes wait_empty
            return item

    def wait_empty(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until the last item was taken; True if it was."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or self._item is _EMPTY, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LatestSlots:
    """Results handed from worker threads to the GUI thread: one slot per kind, newest wins.
    `notify` is called once per batch of posts (not once per post), so the GUI is never flooded."""

    def __init__(self, notify=None):
        self._lock = threading.Lock()
        self._slots: dict[str, object] = {}
        self._pending = False
        self.notify = notify

    def post(self, kind: str, value) -> None:
        with self._lock:
            self._slots[kind] = value
            wake = not self._pending
            self._pending = True
        if wake and self.notify is not None:
            self.notify()

    def drain(self) -> dict[str, object]:
        with self._lock:
            slots, self._slots = self._slots, {}
            self._pending = False
        return slots
