"""Timers: a sorted list of deadlines, shared by every thread of a kernel."""
import itertools
import threading

from sortedcontainers import SortedList


class Timers:
    """Deadlines in order; ``add`` from any thread, ``pop_due`` on Main.

    Entries are ``(deadline, seq, action)``; the unique ``seq`` keeps tuple
    comparison from ever reaching ``action``. Removing an entry under the lock
    is how a sleeper is claimed: whoever removes it (the Main loop firing it,
    or a cancel aborting it) owns the wake-up.
    """

    __slots__ = ("_list", "_lock", "_seq", "count")

    def __init__(self):
        self._list = SortedList()
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.count = 0    # len(), as an attribute the Main loop reads every turn without a call

    def __len__(self):
        return self.count

    def add(self, deadline: float, action) -> tuple:
        """Schedule ``action``; returns the entry (to ``remove``) and whether it is now first."""
        with self._lock:
            entry = (deadline, next(self._seq), action)
            lst = self._list
            lst.add(entry)
            self.count += 1
            return entry, lst[0] is entry

    def remove(self, entry) -> bool:
        """Take ``entry`` out; False if it already fired or was removed."""
        with self._lock:
            try:
                self._list.remove(entry)
            except ValueError:
                return False
            self.count -= 1
            return True

    def earliest(self):
        """The first deadline, or None."""
        with self._lock:
            return self._list[0][0] if self._list else None

    def pop_due(self, now: float) -> list:
        """Remove and return the actions whose deadline is ``now`` or earlier, in order."""
        with self._lock:
            lst = self._list
            n = lst.bisect_left((now, float("inf")))
            if not n:
                return []
            due = [entry[2] for entry in lst.islice(0, n)]
            del lst[:n]
            self.count -= n
            return due

    def snapshot(self) -> list:
        """(deadline, action) pairs, for the stepper and the monitor."""
        with self._lock:
            return [(d, a) for d, _, a in self._list]
