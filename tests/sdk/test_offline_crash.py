"""A sealer killed with SIGKILL at random points, then resumed: every invoice it returned is in the
journal, no number is used twice or skipped, and the chain links from the block's anchor throughout."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from tests.sdk.offline_support import ROOT, SDK_SRC, Cloud

from stalela_sdk.offline import FileKey, OfflineSealer  # noqa: E402

CHILD = r"""
import sys
from tests.sdk.offline_support import request
from stalela_sdk.offline import FileKey, OfflineSealer
sealer = OfflineSealer(sys.argv[1], FileKey.load(sys.argv[2]))
i = 0
while True:
    inv = sealer.seal(request(i, reference=None))
    # Printed only once seal() returned: what a till would have printed on a receipt.
    sys.stdout.write(f"{inv['counter']} {inv['seal']['hash']}\n")
    sys.stdout.flush()
    i += 1
"""


def test_killed_while_sealing_loses_nothing_it_returned_and_reuses_no_number(tmp_path):
    cloud = Cloud()
    key = FileKey.create(tmp_path / "device.pem")
    journal = tmp_path / "journal.db"
    with OfflineSealer(journal, key) as sealer:
        sealer.use_credential(cloud.credential(key.public_jwk(), first=1, last=100_000), cloud.jwks)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(SDK_SRC), str(ROOT)])}
    returned: dict[int, str] = {}
    rng = random.Random(18)
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(journal), str(key.path)], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.8, 2.0))  # the interpreter's start, then a random point among the seals
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
        lines = out.decode().splitlines()
        if lines and not lines[-1].count(" "):
            lines.pop()  # a line cut by the kill
        for line in lines:
            counter, digest = line.split()
            assert int(counter) not in returned, "a number was handed out twice"
            returned[int(counter)] = digest
    assert len(returned) > 50, "the child sealed too little to prove anything"
    with OfflineSealer(journal, FileKey.load(key.path)) as sealer:
        chain = sealer.journal.chain("blk_test")
        counters = [c for c, _, _ in chain]
        assert counters == list(range(1, len(chain) + 1))  # gap-free, each number once
        hashes = {c: h for c, _, h in chain}
        for counter, digest in returned.items():
            assert hashes[counter] == digest  # every returned invoice is in the journal, as returned
        prev = "ab" * 32
        for _, prev_hash, digest in chain:
            assert prev_hash == prev
            prev = digest
        # Resumed: the next number follows the journal, chained to its head.
        from tests.sdk.offline_support import request
        nxt = sealer.seal(request(0, reference=None))
        assert nxt["counter"] == len(chain) + 1 and nxt["seal"]["payload"]["prev_hash"] == prev
