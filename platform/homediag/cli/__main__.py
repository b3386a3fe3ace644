"""``python -m homediag.cli``: the ``homediag`` command where the console script is not installed."""

from homediag.cli import main

main()
