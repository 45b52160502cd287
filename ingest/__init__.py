"""Ingestion: load files, clean and chunk their text, embed the chunks, store them."""
