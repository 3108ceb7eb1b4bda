"""The local testnet and the demo that runs on it: child processes and their PID files
(``procs``), ``kakehashi testnet up|down|status`` (``network``), the proxy process of proxy mode
(``proxy``), and ``make run`` (``demo``: the runner and the transfer phases; ``demo_dvp``: the
DvP phase; ``demo_context``: what the phases share)."""
