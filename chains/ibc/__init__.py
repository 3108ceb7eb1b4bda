"""Host-independent IBC core (sans-I/O): ICS-02/03/04/05/24/26 and the transfer app.

Entry point: :class:`chains.ibc.handler.IbcHandler`. ICS-24 host requirements under ``host/``
(``paths``, ``identifiers``, ``store``: the host seam and overlays, ``commitment``); the
transaction ``context`` and the app interface it hands to apps; ``clients``, ``connections``,
``channels``, ``packets``, ``routing``, ``events``, ``queries``; apps under ``apps/``.
"""
