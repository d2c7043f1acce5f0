"""The ``landscape`` command (installed as ``landscape.cli``): one module per subcommand,
each parse, call the library, print; shared options in :mod:`~landscape.cli.options`,
errors to one line and an exit status in :mod:`~landscape.cli.errors`."""
