"""Retrieval: the BM25 keyword index, fusion, MMR, rerankers, the search logic, evaluation.

Sits above ``vectorstores/`` (it reads stores) and beside ``ingest/`` (it never imports it:
query embedding goes through the small ``QueryEmbedder`` Protocol in ``retrieval.search``).
``app/services`` wraps it for the web and the CLI.
"""
