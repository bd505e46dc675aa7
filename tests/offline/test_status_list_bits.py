"""The bitstring and its encoding, without a database."""
from __future__ import annotations

import base64
import gzip

from stalela.offline import status_list


def test_index_zero_is_the_left_most_bit():
    bits = status_list.bitstring([0, 9, 131_071])
    assert len(bits) == 16_384
    assert bits[0] == 0b1000_0000 and bits[1] == 0b0100_0000 and bits[-1] == 0b0000_0001
    assert [status_list.bit(bits, i) for i in (0, 1, 8, 9, 131_071)] == [True, False, False, True, True]


def test_the_list_grows_in_herd_sized_steps():
    assert len(status_list.bitstring([], highest=131_071)) * 8 == 131_072
    assert len(status_list.bitstring([], highest=131_072)) * 8 == 262_144
    assert len(status_list.bitstring([200_000])) * 8 == 262_144


def test_encoding_is_multibase_gzip_and_deterministic():
    bits = status_list.bitstring([3, 77])
    encoded = status_list.encode_list(bits)
    assert encoded.startswith("u") and "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert encoded == status_list.encode_list(bits)
    body = encoded[1:]
    assert gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == bits
    assert status_list.decode_list(encoded) == bits
    assert len(encoded) < 200  # a sparse list compresses to almost nothing
