"""Light client of the Corda-style chain: notary-signed checkpoints and ICS-23 SMT proofs."""

from lightclients.corda.client import CLIENT_TYPE, CordaLightClient, initial_states

__all__ = ["CLIENT_TYPE", "CordaLightClient", "initial_states"]
