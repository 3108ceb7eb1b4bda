"""Light client of the Corda-style chain: notary-signed checkpoints and ICS-23 SMT proofs."""
