"""Pieces every layer shares: the domain error hierarchy and small helpers."""
