"""The ``templatekit`` command line: click commands over the :mod:`templatekit` library."""
