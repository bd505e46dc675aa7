"""Errors of the offline sealer. ``code`` is stable (the cloud's problem code where one exists, so a
device refuses locally with the very code the merge would have given)."""
from __future__ import annotations

from typing import Any


class OfflineError(Exception):
    code = "offline_error"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None,
                 answer: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.code
        self.field = field
        self.answer = answer  # the cloud's problem document, when the cloud said it

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" + (f" ({self.field})" if self.field else "")


class NoCredential(OfflineError):
    """No credential to seal under (register and fetch one first)."""
    code = "offline_no_credential"


class CredentialRejected(OfflineError):
    """The credential does not verify, or is not valid at this moment (``code``: the core's credential_*)."""
    code = "credential_invalid"


class BlockExhausted(OfflineError):
    """Every number of the block is used (or was returned): fetch a new credential."""
    code = "offline_block_exhausted"


class InvoiceRefused(OfflineError):
    """The invoice breaks a jurisdiction rule or the credential's caps: nothing was sealed or numbered."""
    code = "offline_invoice_refused"


class UploadFailed(OfflineError):
    """The cloud refused a batch or a return as a whole (``answer``: its problem document)."""
    code = "offline_upload_failed"


class ForkDetected(UploadFailed):
    """409 ``offline_number_reused``: the cloud holds another invoice at one of this journal's numbers.
    The credential is revoked; ``answer`` carries the signed fork proof."""
    code = "offline_number_reused"
