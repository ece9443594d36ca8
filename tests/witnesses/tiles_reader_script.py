"""Run inside the third-party test environment (not auditlog's): read a tlog-tiles log with
tlog-scales' TilesReader over HTTP and print its root and proofs as JSON.

Usage: python tiles_reader_script.py BASE_URL OLD_SIZE INDEX [INDEX ...]
"""

import json
import sys

from tlog_scales.backend import HttpBackend
from tlog_scales.reader import TilesReader

base, old_size, indices = sys.argv[1], int(sys.argv[2]), [int(i) for i in sys.argv[3:]]
reader = TilesReader(HttpBackend(base))
checkpoint = reader.get_checkpoint()
root = reader.calculate_root_hash()
print(
    json.dumps(
        {
            "size": checkpoint.size,
            "checkpoint_root": checkpoint.root_hash.hex(),
            "root": root.hex(),
            "inclusion": {
                str(i): [
                    h.hex() for h in reader.get_inclusion_proof(i, checkpoint.size).node_hashes
                ]
                for i in indices
            },
            "consistency": [
                h.hex() for h in reader.get_consistency_proof(old_size, checkpoint.size).node_hashes
            ],
        }
    )
)
