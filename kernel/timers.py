"""Timers: a sorted list of deadlines, the Main thread's own."""
import itertools

from sortedcontainers import SortedList

#: The list's load factor (its sublists' size). sortedcontainers' default,
#: 1,000, suits big lists; a timer list churns (every entry goes in and soon
#: out), and each insert and removal moves half a sublist: at 200 a sleep's
#: add and fire cost ~6.9k instructions less (callgrind, 4,000 timers).
LOAD = 200
#: Due timers ``pop_due`` takes one by one before it takes the rest in one cut.
BURST = 16
_INF = float("inf")


class Timers:
    """Deadlines in order; Main's alone: no lock.

    Only the Main thread calls these methods; another thread hands its
    ``add`` and ``remove`` to Main (``Kernel.add_timer``, ``remove_timer``).
    Entries are ``(deadline, seq, action)``; the unique ``seq`` keeps tuple
    comparison from ever reaching ``action``. Removing an entry is how a
    sleeper is claimed: whoever removes it (the Main loop firing it, or a
    cancel aborting it) owns the wake-up.
    """

    __slots__ = ("_list", "_seq", "count")

    def __init__(self):
        self._list = SortedList()
        self._list._reset(LOAD)         # documented: "reset sorted list load factor"
        self._seq = itertools.count()   # thread-safe: entries are made on any thread
        self.count = 0    # len(), as an attribute the Main loop reads every turn without a call

    def __len__(self):
        return self.count

    def entry(self, deadline: float, action) -> tuple:
        """A new entry for ``insert`` (from any thread)."""
        return (deadline, next(self._seq), action)

    def insert(self, entry) -> None:
        self._list.add(entry)
        self.count += 1

    def add(self, deadline: float, action) -> tuple:
        """Schedule ``action``; returns the entry (to ``remove``)."""
        entry = (deadline, next(self._seq), action)
        self._list.add(entry)
        self.count += 1
        return entry

    def remove(self, entry) -> bool:
        """Take ``entry`` out; False if it already fired or was removed."""
        try:
            self._list.remove(entry)
        except ValueError:
            return False
        self.count -= 1
        return True

    def earliest(self):
        """The first deadline, or None."""
        return self._list[0][0] if self.count else None

    def pop_due(self, now: float) -> list:
        """Remove and return the actions whose deadline is ``now`` or earlier, in order.

        One at a time from the front, through the two calls of SortedList
        that need no positional index (``[0]`` and ``pop(0)``): a bisect, a
        slice or ``del`` of a slice builds that index, which every later add
        then keeps up and the churn of timers invalidates and rebuilds again
        and again. A burst (more due after ``BURST``) takes the rest in one
        cut, where building the index once pays. Measured with callgrind (a
        timer's add included): 13k instructions less per timer than a cut
        alone when each poll finds one due, about the same when it finds ten,
        a hundred or all of them.
        """
        lst = self._list
        due = []
        left = self.count
        while left and lst[0][0] <= now:
            due.append(lst.pop(0)[2])
            left -= 1
            if len(due) == BURST and left and lst[0][0] <= now:
                n = lst.bisect_left((now, _INF))
                due += [entry[2] for entry in lst.islice(0, n)]
                del lst[:n]
                left -= n
                break
        self.count = left
        return due

    def snapshot(self) -> list:
        """(deadline, action) pairs, for the stepper (Main's thread)."""
        return [(d, a) for d, _, a in self._list]
