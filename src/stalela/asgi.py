"""ASGI entry point for uvicorn workers (``stalela.asgi:app``)."""
import gc

# Importing the modules and building the app create about a million objects that live as long as the
# process: collecting while they are being created is wasted start-up time (~10 % of a worker's CPU
# before it serves). The app's lifespan freezes them and turns the collector back on.
gc.disable()

from stalela.cli.lifeline import die_with_parent  # noqa: E402

# Before the second of loading below: a worker whose master dies meanwhile must not go on to serve.
die_with_parent()

from stalela.app import create_app  # noqa: E402

app = create_app()
