"""``python -m templatekit_cli``: the same as the ``templatekit`` command."""

from .main import main

main()
