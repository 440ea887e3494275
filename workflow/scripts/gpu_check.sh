#!/usr/bin/env bash
# GPU checks and timings, on a machine with one CUDA device: the CUDA tests
# (tests/test_gpu.py), then the step-time benchmarks of every method, of AAO's
# parts and of the engine against TRL. Writes each output to $1 (default:
# results/gpu_check/) and prints it.
set -uo pipefail
out=${1:-results/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$out/versions.txt"
import torch, transformers, trl
print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
print(f"device {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
PY
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/test_gpu.txt"
timeout 120 python3 workflow/scripts/bench_methods.py --device cuda --models small,100m 2>&1 | tee "$out/bench_methods.txt"
timeout 120 python3 workflow/scripts/bench_aao.py --device cuda --models 100m 2>&1 | tee "$out/bench_aao.txt"
timeout 300 python3 workflow/scripts/bench_trl.py --device cuda --models small,100m --shapes long --methods dpo,simpo 2>&1 | tee "$out/bench_trl.txt"
