"""A throwaway SoftHSM2 token for tests.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised, and a PKCS#11 library is loaded
once per process (``pkcs11.lib`` caches it by path), so a process gets one token: the first call
creates it and later calls return the same one whatever directory they pass.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LIBRARY_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SKIP_REASON = "SoftHSM2 not installed: apt-get install softhsm2"


@dataclass(frozen=True)
class SoftHsmToken:
    library_path: str
    token_label: str
    pin: str
    conf_path: Path


_token: SoftHsmToken | None = None


def find_softhsm_library() -> str | None:
    explicit = os.environ.get("STALELA_PKCS11_LIBRARY")
    for candidate in (explicit, *LIBRARY_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def init_softhsm_token(
    tmpdir: Path | str,
    *,
    label: str = "stalela-test",
    pin: str = "test-user-pin",
    so_pin: str = "test-so-pin",
) -> SoftHsmToken:
    global _token
    if _token is not None:
        return _token
    library = find_softhsm_library()
    util = shutil.which("softhsm2-util")
    if library is None or util is None:
        raise RuntimeError(SKIP_REASON)
    root = Path(tmpdir)
    tokendir = root / "tokens"
    tokendir.mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    _token = SoftHsmToken(library, label, pin, conf)
    return _token
