"""The S3-compatible backend (AWS S3, MinIO, Ceph RGW, ...): ``STALELA_STORAGE_URL=s3://bucket/prefix``.

boto3 is synchronous: every call runs in a worker thread. Content of unknown length (an export being
packed) is sent as a multipart upload in parts of ``PART_SIZE``, so memory holds one part whatever the
file's size; S3 makes the object visible only when the upload completes, which is what makes a put
atomic here. A failed upload is aborted, so no orphaned parts are left to bill.
"""
from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from stalela.config import Settings
from stalela.storage.base import (
    CHUNK_SIZE,
    Content,
    Hasher,
    ObjectNotFound,
    StorageUnavailable,
    StoredObject,
    check_key,
    check_prefix,
    chunks_of,
)

# S3 wants every part but the last to be at least 5 MiB; 8 MiB is the AWS CLI's default.
PART_SIZE = 8 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix/") (the prefix empty or ending with /)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}: use s3://bucket/prefix")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, f"{prefix}/" if prefix else ""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    name = "s3"

    def __init__(self, settings: Settings, url: str) -> None:
        self.bucket, self.prefix = parse_url(url)
        self._settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # One client per store, made on first use (boto3 clients are thread-safe; their creation is not).
        with self._lock:
            if self._client is None:
                s = self._settings
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=s.s3_endpoint_url, region_name=s.s3_region,
                    aws_access_key_id=s.s3_access_key_id,
                    aws_secret_access_key=s.s3_secret_access_key.get_secret_value() if s.s3_secret_access_key else None,
                    config=Config(s3={"addressing_style": s.s3_addressing_style}, retries={"mode": "standard"},
                                  connect_timeout=10, read_timeout=60))
            return self._client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: getattr(self.client, method)(**kwargs))
        except ClientError:
            raise
        except BotoCoreError as exc:  # connection refused, timeouts, DNS: the store is away
            raise StorageUnavailable(f"the document store is unavailable: {type(exc).__name__}") from exc

    async def put(self, key: str, content: Content) -> StoredObject:
        name = self._key(key)
        hasher = Hasher()
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks_of(content):
                hasher.update(chunk)
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    if upload_id is None:
                        started = await self._call("create_multipart_upload", Bucket=self.bucket, Key=name)
                        upload_id = started["UploadId"]
                    parts.append(await self._part(name, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:  # small enough for one request
                await self._call("put_object", Bucket=self.bucket, Key=name, Body=bytes(buffer))
            else:
                if buffer:
                    parts.append(await self._part(name, upload_id, len(parts) + 1, bytes(buffer)))
                await self._call("complete_multipart_upload", Bucket=self.bucket, Key=name, UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
        except BaseException:
            if upload_id is not None:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._call("abort_multipart_upload", Bucket=self.bucket, Key=name, UploadId=upload_id)
                    except Exception:  # the first error is the one to report
                        pass
            raise
        return StoredObject(key, hasher.size, hasher.hexdigest())

    async def _part(self, name: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        answer = await self._call("upload_part", Bucket=self.bucket, Key=name, UploadId=upload_id,
                                  PartNumber=number, Body=data)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def get(self, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        try:
            answer = await self._call("get_object", Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ObjectNotFound(f"no stored file {key}") from None
            raise
        body = answer["Body"]
        try:
            while chunk := await anyio.to_thread.run_sync(body.read, chunk_size):
                yield chunk
        finally:
            body.close()

    async def stat(self, key: str) -> StoredObject | None:
        try:
            answer = await self._call("head_object", Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return StoredObject(key, int(answer["ContentLength"]))

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    async def delete(self, key: str) -> bool:
        # S3 answers a DELETE of a missing key with success too: ask first, to say whether it was there.
        existed = await self.exists(key)
        await self._call("delete_object", Bucket=self.bucket, Key=self._key(key))
        return existed

    async def list(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        check_prefix(prefix)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            answer = await self._call("list_objects_v2", **kwargs)
            for item in answer.get("Contents", []):
                yield StoredObject(item["Key"][len(self.prefix):], int(item["Size"]))
            if not answer.get("IsTruncated"):
                return
            token = answer["NextContinuationToken"]
