"""Vector stores: one contract (``base.VectorStore``), several backends chosen by configuration."""
