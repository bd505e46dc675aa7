"""A BagIt bag (RFC 8493) written to a temporary directory, then serialized as a deterministic .tar.gz.

Files are hashed (SHA-256) while they are written, so nothing is read twice before packing. Memory
stays bounded whatever the number of files: a large group of files written in order (an invoice's
PDFs) keeps its manifest lines in an index file on disk, not in a list.

Determinism (the same data gives the same bytes): entries in path order, every tar header fixed
(mtime, uid/gid 0, no user or group names, mode 0644), gzip without a file name and with mtime 0, and
fixed text for the tag files. Only the signature over the tag manifest is not reproducible by
itself (ECDSA draws a fresh nonce): the caller keeps and reuses it (``export_models``).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
SIGNATURE = "tagmanifest-sha256.txt.sig"
_COPY_CHUNK = 1 << 20


class HashingFile:
    """A file being written: its SHA-256 and size follow every write."""

    def __init__(self, path: Path) -> None:
        self._fh: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._digest.update(data)
        self.size += len(data)

    def close(self) -> tuple[str, int]:
        self._fh.close()
        return self._digest.hexdigest(), self.size


@dataclass
class _Sequence:
    """Files of one directory written in their final (sorted) order: their manifest lines go to disk."""

    directory: str  # "data/pdf"
    index: BinaryIO
    count: int = 0
    bytes: int = 0


@dataclass
class Bag:
    root: Path  # the bag's base directory (its tag files and data/)
    _files: dict[str, tuple[str, int]] = field(default_factory=dict)  # payload path -> (sha256, size)
    _open: dict[str, HashingFile] = field(default_factory=dict)
    _sequences: dict[str, _Sequence] = field(default_factory=dict)

    def _path(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # --- payload ----------------------------------------------------------------------------------

    def open(self, rel: str) -> HashingFile:
        """A payload file (``data/...``) to write to; ``close(rel)`` records it."""
        if not rel.startswith("data/") or rel in self._files or rel in self._open:
            raise ValueError(f"cannot write payload file {rel!r}")
        self._open[rel] = handle = HashingFile(self._path(rel))
        return handle

    def close(self, rel: str) -> None:
        self._files[rel] = self._open.pop(rel).close()

    def add(self, rel: str, data: bytes) -> None:
        self.open(rel).write(data)
        self.close(rel)

    def add_to_sequence(self, directory: str, name: str, data: bytes) -> None:
        """``directory/name`` (e.g. data/pdf/inv_1.pdf). Names come in ascending order (invoice ids, as the
        database sorts them: byte order for our ids); the archive keeps the order they came in."""
        seq = self._sequences.get(directory)
        if seq is None:
            if any(p.startswith(directory + "/") for p in self._files):
                raise ValueError(f"{directory} already has files of its own")
            index = open(self.root.parent / f".{directory.replace('/', '_')}.index", "w+b")  # noqa: SIM115
            seq = self._sequences[directory] = _Sequence(directory, index)
        if not name or "/" in name or "\n" in name or name.startswith("."):
            raise ValueError(f"{directory}: {name!r} is not a plain file name")
        path = self._path(f"{directory}/{name}")
        with open(path, "xb") as fh:
            fh.write(data)
        seq.index.write(f"{hashlib.sha256(data).hexdigest()} {len(data)} {name}\n".encode())
        seq.count, seq.bytes = seq.count + 1, seq.bytes + len(data)

    def sequence_count(self, directory: str) -> int:
        seq = self._sequences.get(directory)
        return seq.count if seq else 0

    def payload(self) -> Iterator[tuple[str, str, int]]:
        """(path, sha256, size) of every payload file, in path order."""
        groups: list[tuple[str, str | _Sequence]] = [(p, p) for p in self._files]
        groups += [(s.directory + "/", s) for s in self._sequences.values()]
        for _, item in sorted(groups, key=lambda g: g[0]):
            if isinstance(item, str):
                yield item, *self._files[item]
                continue
            item.index.flush()
            item.index.seek(0)
            for line in item.index:
                digest, size, name = line.decode().rstrip("\n").split(" ", 2)
                yield f"{item.directory}/{name}", digest, int(size)

    # --- tag files ----------------------------------------------------------------------------------

    def finish(self, info: list[tuple[str, str]]) -> bytes:
        """Write the manifest, bagit.txt, bag-info.txt (``info`` plus Payload-Oxum) and the tag manifest;
        returns the tag manifest's bytes (what the signature covers)."""
        if self._open:
            raise ValueError(f"payload files still open: {sorted(self._open)}")
        octets = streams = 0
        manifest = HashingFile(self._path(MANIFEST))
        for path, digest, size in self.payload():
            manifest.write(f"{digest}  {path}\n".encode())
            octets, streams = octets + size, streams + 1
        tags = {MANIFEST: manifest.close()}
        lines = [*info, ("Payload-Oxum", f"{octets}.{streams}")]
        for name, content in (("bagit.txt", BAGIT_TXT), ("bag-info.txt", _bag_info(lines))):
            self._path(name).write_bytes(content)
            tags[name] = (hashlib.sha256(content).hexdigest(), len(content))
        tagmanifest = "".join(f"{tags[name][0]}  {name}\n" for name in sorted(tags)).encode()
        self._path(TAG_MANIFEST).write_bytes(tagmanifest)
        return tagmanifest

    def sign(self, signature: bytes) -> None:
        self._path(SIGNATURE).write_bytes(signature)

    def members(self) -> Iterator[str]:
        """Every file of the bag, relative to its base directory, in path order."""
        tags = ["bag-info.txt", "bagit.txt", MANIFEST, TAG_MANIFEST, SIGNATURE]
        payload = (path for path, _, _ in self.payload())
        before = sorted(t for t in tags if t < "data/")
        after = sorted(t for t in tags if t > "data/")
        yield from before
        yield from payload
        yield from after

    def close_all(self) -> None:
        for handle in self._open.values():
            handle.close()
        for seq in self._sequences.values():
            seq.index.close()


def _bag_info(lines: list[tuple[str, str]]) -> bytes:
    out = []
    for label, value in lines:
        # A value is one line: a tenant name with a line break must not forge a label of its own.
        out.append(f"{label}: {' '.join(str(value).split())}\n")
    return "".join(out).encode()


def write_tar_gz(bag: Bag, base_name: str, mtime: int, out: BinaryIO, *, level: int = 6) -> None:
    """The bag as ``base_name/...`` in a gzip'd tar written to ``out`` (blocking: run it in a thread)."""
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=level) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in bag.members():
            path = bag.root / rel
            info = tarfile.TarInfo(f"{base_name}/{rel}")
            info.size = os.path.getsize(path)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = mtime, 0o644, 0, 0, "", ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
