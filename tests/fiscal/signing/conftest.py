from __future__ import annotations

from collections.abc import Iterator

import pytest

from stalela.fiscal.signing.pkcs11 import Pkcs11KeyBackend
from tests.support.softhsm import (
    SKIP_REASON,
    SoftHsmToken,
    find_softhsm_library,
    init_softhsm_token,
)


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    # One token per test session: SoftHSM2 reads its configuration once, when the process first
    # loads the library, so a second token in another directory would be invisible.
    if find_softhsm_library() is None:
        pytest.skip(SKIP_REASON)
    try:
        return init_softhsm_token(tmp_path_factory.mktemp("softhsm"))
    except RuntimeError as exc:  # the library without softhsm2-util
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pkcs11_backend(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11KeyBackend]:
    backend = Pkcs11KeyBackend(
        softhsm_token.library_path, softhsm_token.token_label, softhsm_token.pin
    )
    yield backend
    backend.close()
