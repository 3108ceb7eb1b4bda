"""Corda-style UTXO ledger: salted-Merkle transactions, contracts, validating notary cluster, checkpoints."""
