"""Child process for the kill -9 test: records synthetic traffic forever, printing confirmations.

Usage: python kill_worker.py DB_URL SPOOL_PATH SIGNING_KEY [thread|process]
Prints ``DURABLE <request_id> <n_tokens>`` after each ``wait_durable`` returns; with the process
recorder, ``CHILD <pid>`` (its recording process) first.
"""

from __future__ import annotations

import sys

from auditlog.ledger import Signer
from auditlog.recorder.kinds import RecorderKind, open_recorder
from auditlog.recorder.process import ProcessRecorder
from auditlog.synthetic import SyntheticEngine


def main() -> None:
    db_url, spool, key = sys.argv[1:4]
    signer = Signer.from_key_string(key)
    kind = RecorderKind(sys.argv[4] if len(sys.argv) > 4 else "thread")
    recorder = open_recorder(
        kind,
        db_url,
        origin="test.example/kill",
        signers=[signer],
        spool_path=spool,
        migrate=False,
    )
    if isinstance(recorder, ProcessRecorder):
        print(f"CHILD {recorder.pid}", flush=True)
    engine = SyntheticEngine(seed=11, max_batch=6)
    while True:  # runs until killed
        while len(engine.remaining) < 6:
            recorder.record(engine.start(engine.rng.randint(20, 200)))
        step = engine.step()
        if step is None:
            continue
        recorder.record(step)
        for request_id in set(step.request_ids):
            n = len(engine.truth[request_id].token_ids)
            recorder.wait_durable(request_id, n, timeout=30)
            print(f"DURABLE {request_id} {n}", flush=True)
        for end in engine.finish_done():
            recorder.record(end)


if __name__ == "__main__":
    main()
