"""The proxy mode's I/O edge: the proxy service (a SIMULATED enclave), its home and key files,
and the relayer's proxy prover. The enclave's logic itself is sans-I/O in lightclients/proxy."""
