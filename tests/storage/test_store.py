"""The document store's contract, run as is against both backends: a local directory, and S3 spoken to a
real S3-compatible server (moto's, in its own process on loopback)."""
from __future__ import annotations

import hashlib
import os

import pytest

from stalela.config import Settings
from stalela.storage import s3 as s3_backend
from stalela.storage.base import InvalidKey, ObjectNotFound, StorageUnavailable, purge, read_all
from stalela.storage.factory import store_for
from stalela.storage.local import LocalStore
from stalela.storage.s3 import S3Store
from tests.support.server import free_port


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return store_for(Settings(data_dir=tmp_path, _env_file=None))
    server = request.getfixturevalue("s3_server")
    return store_for(Settings(data_dir=tmp_path, _env_file=None, **server.settings_overrides(server.new_bucket())))


async def chunks(*parts: bytes):
    for part in parts:
        yield part


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_settings_choose_the_backend(tmp_path, s3_server):
    local = store_for(Settings(data_dir=tmp_path, _env_file=None))
    assert isinstance(local, LocalStore) and local.root == (tmp_path / "files").resolve()
    elsewhere = store_for(Settings(data_dir=tmp_path, storage_url=f"file://{tmp_path}/elsewhere", _env_file=None))
    assert isinstance(elsewhere, LocalStore) and elsewhere.root == (tmp_path / "elsewhere").resolve()
    remote = store_for(Settings(data_dir=tmp_path, _env_file=None, **s3_server.settings_overrides("b", "x/y")))
    assert isinstance(remote, S3Store) and (remote.bucket, remote.prefix) == ("b", "x/y/")
    with pytest.raises(ValueError):
        Settings(storage_url="ftp://somewhere/x", _env_file=None)


async def test_put_get_stat_delete(store):
    data = b"hello, fiscal world\n" * 1000
    stored = await store.put("t1/exports/a.tar.gz", data)
    assert (stored.key, stored.size, stored.sha256) == ("t1/exports/a.tar.gz", len(data), sha(data))
    assert await read_all(store, "t1/exports/a.tar.gz") == data
    assert (await store.stat("t1/exports/a.tar.gz")).size == len(data)
    assert await store.exists("t1/exports/a.tar.gz")
    assert await store.delete("t1/exports/a.tar.gz") is True
    assert await store.delete("t1/exports/a.tar.gz") is False  # idempotent
    assert not await store.exists("t1/exports/a.tar.gz")
    assert await store.stat("t1/exports/a.tar.gz") is None
    with pytest.raises(ObjectNotFound):
        await read_all(store, "t1/exports/a.tar.gz")


async def test_streamed_put_of_many_parts_and_streamed_get(store):
    # Over two S3 parts (8 MiB each): the upload goes multipart, in bounded memory.
    block = os.urandom(1 << 20)
    parts = [block] * 17 + [b"tail"]
    stored = await store.put("t1/big.bin", chunks(*parts))
    whole = b"".join(parts)
    assert (stored.size, stored.sha256) == (len(whole), sha(whole))
    got = [chunk async for chunk in store.get("t1/big.bin", chunk_size=1 << 20)]
    assert max(len(c) for c in got) <= 1 << 20 and b"".join(got) == whole


async def test_a_put_replaces_the_previous_file_whole(store):
    await store.put("t1/r.txt", b"first version, longer than the second")
    await store.put("t1/r.txt", chunks(b"second", b" version"))
    assert await read_all(store, "t1/r.txt") == b"second version"


async def test_a_failed_put_leaves_nothing_behind(store, s3_server):
    async def broken():
        yield os.urandom(9 << 20)  # one S3 part already sent
        raise RuntimeError("the producer died")

    await store.put("t1/keep.txt", b"old")
    for key in ("t1/keep.txt", "t1/new.txt"):
        with pytest.raises(RuntimeError):
            await store.put(key, broken())
    assert await read_all(store, "t1/keep.txt") == b"old"  # the old file whole, not a part of the new
    assert not await store.exists("t1/new.txt")
    assert [o.key async for o in store.list("t1/")] == ["t1/keep.txt"]
    if isinstance(store, LocalStore):  # no temporary file left either
        assert sorted(p.name for p in (store.root / "t1").iterdir()) == ["keep.txt"]
    else:  # no multipart upload left open (they are billed until aborted)
        uploads = s3_server.client().list_multipart_uploads(Bucket=store.bucket)
        assert uploads.get("Uploads", []) == []


async def test_list_by_tenant_prefix_and_purge(store):
    for key in ("t2/exports/b.tar.gz", "t1/exports/b.tar.gz", "t1/exports/a.tar.gz", "t1/pdf/x.pdf", "t10/z"):
        await store.put(key, key.encode())
    assert [o.key async for o in store.list("t1/")] == ["t1/exports/a.tar.gz", "t1/exports/b.tar.gz", "t1/pdf/x.pdf"]
    assert [(o.key, o.size) async for o in store.list("t1/exports/")] == [
        ("t1/exports/a.tar.gz", 19), ("t1/exports/b.tar.gz", 19)]
    assert [o.key async for o in store.list("t1")] == [
        "t1/exports/a.tar.gz", "t1/exports/b.tar.gz", "t1/pdf/x.pdf", "t10/z"]  # a plain prefix, as S3 reads it
    assert await purge(store, "t1/") == 3
    assert [o.key async for o in store.list("")] == ["t10/z", "t2/exports/b.tar.gz"]


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a//b", "a/./b", "a/../b", "", ".hidden/x", "a/",
                                 "a\\b", "a/b\x00c", "x" * 1025, "é/x"])
async def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(InvalidKey):
        await store.put(key, b"x")
    with pytest.raises(InvalidKey):
        await store.stat(key)
    with pytest.raises(InvalidKey):
        await read_all(store, key)


async def test_an_unreachable_s3_store_is_a_503_not_a_crash(tmp_path):
    store = S3Store(Settings(data_dir=tmp_path, s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
                             s3_region="us-east-1", s3_access_key_id="k", s3_secret_access_key="s",
                             _env_file=None), "s3://nowhere/x")
    with pytest.raises(StorageUnavailable):
        await store.stat("t1/x")
    assert s3_backend.parse_url("s3://bucket") == ("bucket", "")
