"""docs/net.md and docs/rpc.md name every exported name, and their examples run."""
import re
from pathlib import Path

import pytest

from genloop import net, rpc

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


@pytest.mark.parametrize("module, page", [(net, "net.md"), (rpc, "rpc.md")])
def test_every_exported_name_is_documented(module, page):
    text = (DOCS / page).read_text()
    missing = [name for name in module.__all__ if not re.search(rf"`{re.escape(name)}[(`\s]", text)]
    assert not missing, f"{page} does not describe {missing}"


def test_the_rpc_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", (DOCS / "rpc.md").read_text(), re.S).group(1)
    exec(compile(code, "docs/rpc.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "5"
