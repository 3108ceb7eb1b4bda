"""Typed errors of the IBC core.

Every rejection is a subclass of :class:`IbcError` whose message names the rule and the
object that failed, so that a relayer (or a test) can tell a wrong proof from an unknown id
without parsing text. Nothing here is raised after a write: handlers validate, then write,
and the transaction overlay discards everything when a later message fails anyway.
"""

from __future__ import annotations


class IbcError(Exception):
    """Base of every error the IBC core raises on bad input."""


class InvalidIdentifier(IbcError):
    """An identifier breaks the ICS-24 character or length rules."""


class InvalidMessage(IbcError):
    """A message is malformed: missing fields, undecodable bytes, impossible values."""


class NotFound(IbcError):
    """A client, connection, channel or packet the message refers to does not exist."""


class IdentifierExists(IbcError):
    """Something is already stored under an identifier the handler was about to use."""


class InvalidState(IbcError):
    """An object is in the wrong handshake or lifecycle state for this message."""


class VersionMismatch(IbcError):
    """Connection or channel versions (or the ordering they allow) are incompatible."""


class ClientFailure(IbcError):
    """The light client rejected a client message, parameters, or was not active."""


class ProofFailed(IbcError):
    """A proof of the counterparty's state did not verify."""


class PacketError(IbcError):
    """A packet is invalid here: timed out, too large, wrong route or wrong sequence."""


class NoRoute(IbcError):
    """No module is bound to the port the message addresses."""


class AppError(IbcError):
    """An application callback refused a handshake step or failed on an ack or timeout."""


class TxFailed(IbcError):
    """A message of a transaction failed; nothing of the transaction was written."""

    def __init__(self, index: int, cause: Exception) -> None:
        self.index = index
        self.cause = cause
        super().__init__(f"message {index} failed: {type(cause).__name__}: {cause}")
