"""The relayer's TOML config: the key-naming table reader every table uses (``tables``), the
relayer config itself (``schema``) and the ``[chains.proxy]`` table of proxy mode (``proxy``)."""
