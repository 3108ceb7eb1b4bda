"""The ``kakehashi`` command line: the parser (``parser``), the one-shot command bodies
(``commands``) and where human-readable output goes (``console``).

``main`` is re-exported because it is the console-script entry point (``relayer.cli:main``).
The dvp and proxy verbs register themselves from their own packages (``relayer.dvp.cli``,
``relayer.proxy.cli``), so each feature keeps its commands next to its code.
"""

from relayer.cli.parser import main

__all__ = ["main"]
