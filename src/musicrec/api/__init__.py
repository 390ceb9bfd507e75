"""The HTTP API (FastAPI): app factory, routes by resource, schemas, one error table."""
