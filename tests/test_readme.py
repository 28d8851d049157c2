"""The README's examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_starts_with_the_two_commands():
    first = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert len(first) == 2
    assert first[0].endswith("genloop demo run hello")
    assert first[1].endswith("pytest")


def test_tour_example_runs(capsys):
    exec(compile(python_blocks()[0], "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "(3, True)"


def test_server_example_defines_a_handler():
    scope = {}
    exec(compile(python_blocks()[1], "README.md", "exec"), scope)
    assert callable(scope["echo"]) and callable(scope["main"])
