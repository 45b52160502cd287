"""The HTTP service and the command line: FastAPI app, routers, services, settings."""
