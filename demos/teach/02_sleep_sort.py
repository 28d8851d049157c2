"""02 · sleep sort: timers decide who runs next.

    genloop step 02            (or: python demos/teach/02_sleep_sort.py)

What to watch:
- Each `sleep-N` task runs one step and parks: "sleeps 0.N s". The Timers
  column fills up, kept in deadline order (a sorted list, not a queue).
- Then nothing is runnable, so the virtual clock jumps straight to the
  earliest deadline: `t` moves in leaps, and no real time passes.
- The sleepers wake in deadline order, so the numbers come out sorted.
"""
from genloop.kernel import run, sleep, spawn

NUMBERS = [5, 1, 4, 2, 3]


def sleeper(n, out):
    yield from sleep(n / 10)
    out.append(n)


def main():
    out = []
    tasks = []
    for n in NUMBERS:
        tasks.append((yield from spawn(sleeper, n, out, name=f"sleep-{n}")))
    for task in tasks:
        yield from task.join()
    return out


if __name__ == "__main__":
    print(run(main))
