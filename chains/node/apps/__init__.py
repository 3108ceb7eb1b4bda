"""The chain state machines behind the generic node (each a ``chains.node.app.ChainApp``): the
EVM-style ledger (``evm``) and the Corda-style ledger (``corda``, on SQLite via ``corda_store``)."""
