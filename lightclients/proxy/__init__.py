"""LCP-style proxy ("proxy on TEE"): the on-chain proxy client and the SIMULATED enclave's logic.

``client.py`` is what a chain runs (client type ``12-proxy``); ``enclave.py`` is what the
proxy service runs off-chain around the direct clients; ``attestation.py`` and
``sealing.py`` are the simulated attestation authority and key sealing; ``messages.py``
holds every encoding that is signed or hashed. All of it is sans-I/O.
"""

from lightclients.proxy.client import CLIENT_TYPE, ProxyLightClient
from lightclients.proxy.enclave import (
           Enclave,
           EnclaveError,
           MisbehaviourDetected,
           Signed,
           StateInfo,
)

__all__ = ["CLIENT_TYPE", "Enclave", "EnclaveError", "MisbehaviourDetected", "ProxyLightClient", "Signed",
           "StateInfo"]
