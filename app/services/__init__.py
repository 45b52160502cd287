"""Orchestration between the HTTP layer and the packages below it; no FastAPI imports here."""
