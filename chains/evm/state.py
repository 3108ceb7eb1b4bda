"""World state: a secure Merkle-Patricia trie of accounts, one storage trie per contract.

Accounts are cached as objects and written into the world trie only at ``commit``, which
hashes each trie once per block. ``snapshot``/``revert`` copy the small per-account fields
and take O(1) trie snapshots, which is how a multi-message transaction is undone when one
of its messages fails. Every committed root stays provable (``prove``) because the node
store is content addressed and never pruned here.

Only accounts touched since the last commit are written back, snapshotted and reverted, so
the cost of a block or a transaction does not grow with the number of accounts the chain
has ever loaded.

Each commit also records what it changed as a flat map (:func:`account_key`,
:func:`slot_key`, :func:`blob_key` -> the value now in the trie, None when gone): the node
keeps that as an index of the latest state, so unproved reads need no trie walk. The map is
read back from the committed tries for every key written since the last commit (reverted
writes included), so it equals the trie by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import rlp

from chains.store.mpt import (
    EMPTY_CODE_HASH,
    EMPTY_ROOT,
    MemoryNodeStore,
    MerklePatriciaTrie,
    NodeStore,
    TrieSnapshot,
    encode_account,
    encode_storage_value,
)
from lightclients.crypto import keccak256
from lightclients.mpt import decode_account

# Storage slot holding the root of a contract's blob trie (values longer than a word).
BLOB_ROOT_SLOT = keccak256(b"kakehashi.evm.blob-root")


@dataclass(slots=True)
class AccountState:
    nonce: int
    balance: int
    code_hash: bytes
    storage: MerklePatriciaTrie


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    accounts: dict[bytes, tuple[int, int, bytes, TrieSnapshot]]  # the accounts touched so far
    blobs: dict[bytes, TrieSnapshot]


def account_key(address: bytes) -> bytes:
    """Flat-state key of an account; its value is the state-trie leaf (rlp account)."""
    return b"a" + address


def slot_key(address: bytes, slot: bytes) -> bytes:
    """Flat-state key of a storage slot; its value is the storage-trie leaf (rlp word)."""
    return b"s" + address + slot


def blob_key(address: bytes, key: bytes) -> bytes:
    """Flat-state key of a blob-trie entry (see :meth:`WorldState.blobs`); its value is the value."""
    return b"b" + address + key


@dataclass(frozen=True, slots=True)
class AccountProof:
    """EIP-1186 shaped answer: the account proof plus one storage proof per slot."""

    address: bytes
    state_root: bytes
    account_proof: list[bytes]
    storage_root: bytes
    storage_proofs: dict[bytes, list[bytes]]


class WorldState:
    def __init__(self, store: NodeStore | None = None, root: bytes = EMPTY_ROOT) -> None:
        self.store: NodeStore = store if store is not None else MemoryNodeStore()
        self.trie = MerklePatriciaTrie(self.store, root, secure=True)
        self._accounts: dict[bytes, AccountState] = {}
        self._blobs: dict[bytes, MerklePatriciaTrie] = {}
        # Accounts handed out by account() since the last commit, with their committed fields
        # (None: not in the committed trie), so revert can restore what a snapshot omits.
        self._touched: dict[bytes, tuple[int, int, bytes, TrieSnapshot] | None] = {}
        self._slots_written: dict[bytes, set[bytes]] = {}
        self._blobs_written: dict[bytes, set[bytes]] = {}
        self._changes: dict[bytes, bytes | None] = {}

    def blobs(self, address: bytes) -> MerklePatriciaTrie:
        """A contract's trie of whole values (keys are raw bytes), committed into its storage.

        Storage words are 32 bytes, but the IBC handler must read back the full values it
        hashed into its commitment slots; they live here, and the root of this trie is kept
        in the contract's storage at BLOB_ROOT_SLOT so the state root covers them too.
        """
        trie = self._blobs.get(address)
        if trie is None:
            root = self.get_storage(address, BLOB_ROOT_SLOT)
            trie = MerklePatriciaTrie(
                self.store, root.to_bytes(32, "big") if root else EMPTY_ROOT
            )
            self._blobs[address] = trie
        return trie

    def account(self, address: bytes) -> AccountState:
        """The account at ``address``, created empty on first touch."""
        acct = self._accounts.get(address)
        if acct is None:
            raw = self.trie.get(address)
            if raw is None:
                acct = AccountState(0, 0, EMPTY_CODE_HASH, MerklePatriciaTrie(self.store, secure=True))
                self._touched[address] = None
            else:
                body = decode_account(raw)
                acct = AccountState(
                    body.nonce,
                    body.balance,
                    body.code_hash,
                    MerklePatriciaTrie(self.store, body.storage_root, secure=True),
                )
                self._touched[address] = (acct.nonce, acct.balance, acct.code_hash, acct.storage.snapshot())
            self._accounts[address] = acct
        elif address not in self._touched:
            self._touched[address] = (acct.nonce, acct.balance, acct.code_hash, acct.storage.snapshot())
        return acct

    def exists(self, address: bytes) -> bool:
        return address in self._accounts or self.trie.get(address) is not None

    def get_storage(self, address: bytes, slot: bytes) -> int:
        raw = self.account(address).storage.get(slot)
        return 0 if raw is None else int.from_bytes(rlp.decode(raw), "big")

    def set_storage(self, address: bytes, slot: bytes, value: int | bytes) -> None:
        encoded = encode_storage_value(value)
        storage = self.account(address).storage
        written = self._slots_written.get(address)
        if written is None:
            written = self._slots_written[address] = set()
        written.add(slot)
        if encoded:
            storage.set(slot, encoded)
        else:
            storage.delete(slot)

    def set_blob(self, address: bytes, key: bytes, value: bytes) -> None:
        """Write a blob-trie entry (an empty value deletes it)."""
        self._blobs_written.setdefault(address, set()).add(bytes(key))
        self.blobs(address).set(key, value)

    def delete_blob(self, address: bytes, key: bytes) -> None:
        self._blobs_written.setdefault(address, set()).add(bytes(key))
        self.blobs(address).delete(key)

    def snapshot(self) -> StateSnapshot:
        accounts = self._accounts
        return StateSnapshot(
            {
                addr: (a.nonce, a.balance, a.code_hash, a.storage.snapshot())
                for addr, a in ((addr, accounts[addr]) for addr in self._touched if addr in accounts)
            },
            {addr: t.snapshot() for addr, t in self._blobs.items()},
        )

    def revert(self, snap: StateSnapshot) -> None:
        for addr in list(self._blobs):
            if addr not in snap.blobs:
                del self._blobs[addr]
        for addr, blob in snap.blobs.items():
            self._blobs[addr].revert(blob)
        # Accounts first touched after the snapshot go back to their committed fields.
        for addr in [a for a in self._touched if a not in snap.accounts]:
            clean = self._touched.pop(addr)
            acct = self._accounts.get(addr)
            if clean is None or acct is None:
                self._accounts.pop(addr, None)
                continue
            acct.nonce, acct.balance, acct.code_hash = clean[0], clean[1], clean[2]
            acct.storage.revert(clean[3])
        for addr, (nonce, balance, code_hash, storage) in snap.accounts.items():
            acct = self._accounts[addr]
            acct.nonce, acct.balance, acct.code_hash = nonce, balance, code_hash
            acct.storage.revert(storage)

    def commit(self) -> bytes:
        """Write every touched account into the world trie and return the new state root."""
        for addr, blob in self._blobs.items():
            if blob.dirty:
                root = blob.commit()
                self.set_storage(addr, BLOB_ROOT_SLOT, b"" if root == EMPTY_ROOT else root)
        for addr in self._touched:
            acct = self._accounts.get(addr)
            if acct is None:
                continue
            storage_root = acct.storage.commit()
            empty = (
                acct.nonce == 0
                and acct.balance == 0
                and acct.code_hash == EMPTY_CODE_HASH
                and storage_root == EMPTY_ROOT
            )
            if empty:
                self.trie.delete(addr)
            else:
                self.trie.set(addr, encode_account(acct.nonce, acct.balance, storage_root, acct.code_hash))
        root = self.trie.commit()
        self._record_changes()
        return root

    def _record_changes(self) -> None:
        changes, trie = self._changes, self.trie
        for addr in self._touched:
            changes[account_key(addr)] = trie.get(addr)
        for addr, slots in self._slots_written.items():
            acct = self._accounts.get(addr)
            storage = acct.storage if acct is not None else None
            for slot in slots:
                changes[slot_key(addr, slot)] = None if storage is None else storage.get(slot)
        for addr, keys in self._blobs_written.items():
            blob = self._blobs.get(addr)
            for key in keys:
                changes[blob_key(addr, key)] = None if blob is None else blob.get(key)
        self._touched.clear()
        self._slots_written.clear()
        self._blobs_written.clear()

    def take_changes(self) -> dict[bytes, bytes | None]:
        """Flat changes (see module doc) of every commit since the last call."""
        changes, self._changes = self._changes, {}
        return changes

    def reset(self, root: bytes) -> None:
        """Drop every uncommitted or later change and continue from committed ``root``."""
        self.trie = MerklePatriciaTrie(self.store, root, secure=True)
        self._accounts.clear()
        self._blobs.clear()
        self._touched.clear()
        self._slots_written.clear()
        self._blobs_written.clear()
        self._changes.clear()

    def prove(self, address: bytes, slots: list[bytes], state_root: bytes) -> AccountProof:
        """Account and storage proofs at a committed ``state_root``."""
        world = self.trie.at(state_root)
        raw = world.get(address)
        storage_root = EMPTY_ROOT if raw is None else decode_account(raw).storage_root
        storage = MerklePatriciaTrie(self.store, storage_root, secure=True)
        return AccountProof(
            address,
            state_root,
            world.prove(address),
            storage_root,
            {slot: storage.prove(slot) for slot in slots},
        )
