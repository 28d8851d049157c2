"""The timer list itself (``kernel.timers.Timers``) against a plain sorted model.

``pop_due`` takes due timers one by one from the front, and the rest in one
cut once a burst finds more due: both ways, and the switch between them,
must give every due action exactly once, in order, and keep ``count`` true,
whatever adds and removals came between.
"""
from hypothesis import given, settings
from hypothesis import strategies as st

from genloop.kernel.core import _Alarm
from genloop.kernel.timers import BURST, Timers

# An operation: add timers at a deadline (as many as a burst, at times), remove
# the n-th live one, or pop at a time.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 60), st.sampled_from([1, 1, 1, BURST + 3])),
        st.tuples(st.just("remove"), st.integers(0, 200), st.just(1)),
        st.tuples(st.just("pop"), st.integers(0, 70), st.just(1)),     # from 61: every timer is due
    ),
    max_size=400,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_pop_due_gives_every_due_action_once_in_order(script):
    timers = Timers()
    live = []        # the model: (deadline, seq, action) entries, as Timers makes them
    names = iter(range(10**9))
    for op, arg, copies in script:
        if op == "add":
            for _ in range(copies):
                live.append(timers.add(float(arg), next(names)))
        elif op == "remove" and live:
            entry = live.pop(arg % len(live))
            assert timers.remove(entry)
            assert not timers.remove(entry)      # a second removal finds nothing
        elif op == "pop":
            live.sort()
            due = [e for e in live if e[0] <= arg]
            assert timers.pop_due(float(arg)) == [e[2] for e in due]
            live = [e for e in live if e[0] > arg]
        assert timers.count == len(live)
        assert timers.earliest() == (min(live)[0] if live else None)


def test_a_burst_where_some_are_not_due_and_one_where_all_are():
    timers = Timers()
    for i in range(BURST * 3):
        timers.add(float(i), i)
    # Past the burst with some not due: the due rest in one cut, the others stay.
    assert timers.pop_due(BURST * 2 - 0.5) == list(range(BURST * 2))
    assert timers.count == BURST and timers.earliest() == BURST * 2
    for i in range(BURST * 3, BURST * 5):
        timers.add(float(i), i)
    # All due: the cut takes them all and the list is empty.
    assert timers.pop_due(10.0**6) == list(range(BURST * 2, BURST * 5))
    assert timers.count == 0 and timers.earliest() is None
    assert timers.pop_due(10.0**6) == []
    timers.add(1.0, "again")                # the emptied list takes timers again
    assert timers.pop_due(1.0) == ["again"]


def test_a_timers_function_runs_where_a_task_would_be_woken():
    """``_Alarm``: a function as a timer's action, named by its function for the step view."""
    calls = []

    def on_timeout():
        calls.append(1)

    alarm = _Alarm(on_timeout)
    alarm.wake()
    assert calls == [1]
    assert repr(alarm).endswith("on_timeout")
