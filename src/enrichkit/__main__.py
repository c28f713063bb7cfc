"""``python -m enrichkit`` = the ``enrichkit`` command."""

from enrichkit.cli import main

main()
