"""HTTP routes: each parses a typed request, calls one service method, returns a typed model."""
