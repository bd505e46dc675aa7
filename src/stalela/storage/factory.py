"""Which backend holds the files: chosen once per process and configuration, from settings."""
from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from stalela.config import Settings
from stalela.storage.base import DocumentStore
from stalela.storage.local import LocalStore
from stalela.storage.s3 import S3Store

_lock = threading.Lock()
_stores: dict[tuple, DocumentStore] = {}


def store_for(settings: Settings) -> DocumentStore:
    """``STALELA_STORAGE_URL``: unset (``{data_dir}/files``), ``file:///path`` or ``s3://bucket/prefix``."""
    url = settings.storage_url or ""
    identity = (url, str(Path(settings.data_dir).resolve()), settings.s3_endpoint_url, settings.s3_region,
                settings.s3_access_key_id, settings.s3_addressing_style)
    with _lock:
        if identity not in _stores:
            _stores[identity] = _make(settings, url)
        return _stores[identity]


def _make(settings: Settings, url: str) -> DocumentStore:
    if not url:
        return LocalStore(Path(settings.data_dir) / "files")
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return LocalStore(Path(unquote(urlsplit(url).path)))
    if scheme == "s3":
        return S3Store(settings, url)
    raise ValueError(f"STALELA_STORAGE_URL: unsupported scheme {scheme!r} (use s3:// or file://)")
