"""Sealing invoices on a device without the cloud (docs/offline.md, "The SDK")."""
from stalela_sdk.offline.errors import (
    BlockExhausted, CredentialRejected, ForkDetected, InvoiceRefused, NoCredential, OfflineError, UploadFailed,
)
from stalela_sdk.offline.keys import DeviceKey, FileKey, Pkcs11Key
from stalela_sdk.offline.sealer import OfflineSealer

__all__ = ["BlockExhausted", "CredentialRejected", "DeviceKey", "FileKey", "ForkDetected", "InvoiceRefused",
           "NoCredential", "OfflineError", "OfflineSealer", "Pkcs11Key", "UploadFailed"]
