"""ASGI entry point for uvicorn workers (``stalela.asgi:app``)."""
from stalela.app import create_app

app = create_app()
