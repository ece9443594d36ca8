#!/usr/bin/env bash
# Build the test-only environment of third-party transparency-log tools that the test suite runs
# as subprocesses: aics-witness (a C2SP tlog-witness server), aics-tlog (its tlog library, with a
# tlog-tiles verifier) and tlog-scales (a tlog-tiles reader).
#
# aics-witness and aics-tlog declare Python >= 3.12 but run on 3.11, so they are installed with
# --ignore-requires-python. They never enter auditlog's own environment: the tests start them with
# this environment's interpreter and talk to them over 127.0.0.1 only.
#
# Usage: scripts/witness_env.sh [TARGET]   (TARGET defaults to $AUDITLOG_WITNESS_VENV, else
# .witness-venv in the repository root; the tests look in the same places.)
set -euo pipefail

cd "$(dirname "$0")/.."
TARGET="${1:-${AUDITLOG_WITNESS_VENV:-$PWD/.witness-venv}}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" -m venv "$TARGET"
PIP=("$TARGET/bin/python" -m pip install --quiet --disable-pip-version-check)
# Their dependencies first, pinned exactly.
"${PIP[@]}" \
  cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 \
  requests==2.34.2 urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1 charset-normalizer==3.5.3
# The tools themselves, exactly pinned, without letting pip pull anything else.
"${PIP[@]}" --no-deps --ignore-requires-python \
  aics-tlog==0.2.1 aics-witness==0.1.0 tlog-scales==0.0.3
"$TARGET/bin/python" -c "import aics_witness, aics_tlog, tlog_scales; print('witness env ready')"
