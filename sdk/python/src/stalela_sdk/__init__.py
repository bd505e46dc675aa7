"""stalela-sdk: the Python client of Stalela's fiscal cloud.

- ``Stalela`` / ``AsyncStalela``: every REST resource, retries that keep the Idempotency-Key, cursor
  pagination, typed errors (``stalela_sdk.errors``);
- ``Webhook``: Standard Webhooks signature verification;
- ``verify_invoice``, ``verify_checkpoint``, ``verify_inclusion``, ``verify_consistency``: offline checks
  with only the public keys, on the server's own pure core (``stalela-core``);
- ``stalela_sdk.offline``: the offline sealer (a device sealing under a delegated credential).
"""
from stalela_sdk._http import NO_RETRIES, RetryPolicy
from stalela_sdk._version import __version__
from stalela_sdk.client import AsyncStalela, Stalela
from stalela_sdk.errors import (APIConnectionError, AuthenticationError, Conflict, NotFound, PermissionDenied,
                                RateLimited, ServerError, StalelaError, ValidationError)
from stalela_sdk.verify import (Verification, verify_checkpoint, verify_consistency, verify_inclusion,
                                verify_invoice, verify_sealed)
from stalela_sdk.webhooks import Webhook, WebhookVerificationError

__all__ = [
    "__version__", "Stalela", "AsyncStalela", "RetryPolicy", "NO_RETRIES",
    "StalelaError", "APIConnectionError", "ValidationError", "AuthenticationError", "PermissionDenied", "NotFound",
    "Conflict", "RateLimited", "ServerError",
    "Webhook", "WebhookVerificationError",
    "Verification", "verify_invoice", "verify_checkpoint", "verify_inclusion", "verify_consistency",
    "verify_sealed",
]
