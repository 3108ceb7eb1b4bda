"""The relaying daemon: chain handles (``chain``), block sources (``events``, ``watch``), the
sans-I/O packet planner (``packets``), workers, the supervisor that runs them, and the wiring
from a config to a running supervisor (``daemon``)."""
