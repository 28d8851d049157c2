"""``python -m genloop``: the same as the ``genloop`` command."""
from genloop.demos.cli import main

main()
