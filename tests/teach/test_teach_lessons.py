"""Every lesson in demos/teach runs to the end under both drivers, and says what to watch."""
import importlib.util

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
}


def test_the_lessons_are_numbered_one_idea_each():
    assert [p.stem[:2] for p in lessons()] == ["01", "02", "03", "04", "05", "06", "07"]
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
        assert all("MainThread" in line for line in stepped)      # every worker simulated on this thread
        assert "genloop-IO-" in ran[1] and "genloop-Default-" in ran[2] and ran[2].endswith("back on MainThread")
    else:
        assert path.stem == "06_blocking_call"
        module = main.__globals__
        frozen, offloaded = ran.values()
        assert frozen >= 0.9 * module["BLOCK"]                   # Main stopped: the ticker missed its ticks
        assert offloaded < 0.75 * module["BLOCK"]                # on IO: the ticker kept going
        assert set(stepped) == set(ran)
