"""ICS-24 host requirements: identifiers, the store key layout (``paths``), the host store seam
and its overlays (``store``), and the hash preimages committed in it (``commitment``)."""
