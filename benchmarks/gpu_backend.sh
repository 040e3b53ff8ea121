#!/usr/bin/env bash
# The backend throughput benchmark on a CUDA host (bfloat16, larger client counts).
#
#   benchmarks/gpu_backend.sh [extra backend_throughput.py options, e.g. --model /path/to/model]
#
# Needs a CUDA build of torch and the repository's ML extras in the active Python
# (PYTHON=... to choose another), and the model provisioned (`writersroom models fetch`)
# or given with --model. Appends to benchmarks/RESULTS.md like the CPU run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PYTHON" benchmarks/backend_throughput.py --device cuda --clients 1 4 16 64 --max-batch 64 --rounds 3 "$@"
