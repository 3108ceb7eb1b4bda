"""Host-independent IBC core (sans-I/O): ICS-02/03/04/05/24/26 and the transfer app.

Entry point: :class:`chains.ibc.handler.IbcHandler`. Modules: ``paths`` and ``identifiers``
(ICS-24), ``store`` (the host seam and overlays), ``clients``, ``connections``, ``channels``,
``packets``, ``routing``, ``events``, ``commitment``; apps under ``apps/``.
"""
