"""Every lesson in demos/teach runs to the end under both drivers, and says what to watch."""
import importlib.util
import re

import pytest

from genloop import kernel
from genloop.demos.teach_cli import lessons, load_main
from genloop.kernel.stepper import Stepper

#: What main returns, under either driver, where it does not depend on threads or real time.
RESULTS = {
    "01_ping_pong": "serve -> ping -> pong -> ping -> pong -> ping -> pong",
    "02_sleep_sort": [1, 2, 3, 4, 5],
    "03_producer_consumer": [0, 1, 2, 3, 4],
    "04_echo_server": ["one two", "uno dos"],
    "07_search_rpcs": ["red kettle", "green kettle"],
    "09_limited": "at most 2 at once: True",
}


def test_the_lessons_are_numbered_one_idea_each():
    assert [p.stem[:2] for p in lessons()] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
    for path in lessons():
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert "What to watch" in module.__doc__, path.name


@pytest.mark.parametrize("path", lessons(), ids=lambda p: p.stem)
def test_lesson_runs_to_the_end_stepped_and_run(path):
    main = load_main(path)
    with Stepper(main) as stepper:
        stepped = stepper.run()
    ran = kernel.run(main)
    if path.stem in RESULTS:
        assert stepped == ran == RESULTS[path.stem]
    elif path.stem == "05_with_context":
        # the stepper's thread wears the simulated worker's name: the same story as the real run
        for trail in (stepped, ran):
            assert trail[0] == "main on MainThread"
            assert re.fullmatch(r"read_config on genloop-IO-\d, back on MainThread", trail[1]), trail
            assert re.fullmatch(r"crunch on genloop-Default-\d, back on MainThread", trail[2]), trail
    elif path.stem == "08_unconfined":
        for trail in (stepped, ran):       # starts where it was spawned, resumes where the timer woke it
            assert re.fullmatch(r"drifter starts on genloop-Default-\d", trail[0]), trail
            assert trail[1] == "after sleep on MainThread", trail
    else:
        assert path.stem == "06_blocking_call"
        module = main.__globals__
        assert set(stepped) == set(ran)
        # the stepper simulates the blocking time (kernel.simtime): the lesson's point holds under both
        for frozen, offloaded in (ran.values(), stepped.values()):
            assert frozen >= 0.9 * module["BLOCK"]               # Main stopped: the ticker missed its ticks
            assert offloaded < 0.75 * module["BLOCK"]            # on IO: the ticker kept going
        assert list(stepped.values()) == [module["BLOCK"] + module["TICK"], module["TICK"]]
