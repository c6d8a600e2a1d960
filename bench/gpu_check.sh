#!/usr/bin/env bash
# One short check on a machine with an NVIDIA GPU (CI has none; nothing depends on this):
#   1. installs the CUDA build of PyTorch into the venv if torch sees no GPU,
#   2. runs the test suite's device tests,
#   3. prints training throughput of NeuMF-8 and NeuMF-64 at batch 65,536 in bf16,
#   4. time to HR@10 >= 0.70 on ml-1m-ncf (needs NCF_DATA_DIR), and full-ranking time,
#   5. the neural models' default recipes (issue 28): `ncf train --dataset ml-1m-ncf --model
#      gmf|neumf|mlp` on the GPU, wall time and test figures (CPU, 1 thread, with the recipes'
#      recency-weighted epochs, whose rows the GPU path permutes on the device: gmf 0.7417 /
#      0.4776 in 45 s, neumf 0.7457 / 0.4790 in 156 s, mlp 0.7377 / 0.4638 in 152 s), then
#      `--preset paper` (NeuMF-64; CPU, 1 thread: 0.7497 / 0.4855 in 570 s; docs/benchmarks.md),
#      last and cut at 5 minutes so that the whole check fits one short device lease.
# Usage, from the repository root:  NCF_DATA_DIR=/path/to/data bash bench/gpu_check.sh
# It has not been run on real hardware by the author of this script (no GPU was available).
set -euo pipefail
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} PYTHONPATH=${PYTHONPATH:-src}

if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  nvidia-smi >/dev/null 2>&1 || { echo "gpu_check: no NVIDIA GPU (nvidia-smi failed)"; exit 1; }
  echo "gpu_check: torch sees no GPU; installing the CUDA build of PyTorch"
  "$PY" -m pip install --quiet --upgrade torch --index-url https://download.pytorch.org/whl/cu128
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || { echo "gpu_check: torch still sees no GPU"; exit 1; }
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))'

echo "== device tests"
"$PY" -m pytest -q tests/training/test_distributed.py tests/test_devices.py tests/training/test_rowwise.py

echo "== throughput (bf16 autocast, batch 65,536, 4 negatives, synthetic ML-20M shape)"
"$PY" - <<'PY'
import sys, time
sys.path.insert(0, "bench")
import torch
from bench_scale import synthetic_log
from ncf.models import build_model
from ncf.training import TrainConfig, Trainer

data = synthetic_log(20_000_000, 138_000, 27_000, seed=0)
for factors, layers in ((8, (64, 32, 16, 8)), (64, (256, 128, 64))):
    model = build_model("neumf", data.n_users, data.n_items, factors=factors, layers=layers)
    for precision in ("bf16", "fp32"):
        config = TrainConfig(epochs=1, batch_size=65_536, lr=0.003, device="cuda",
                             precision=precision, threads=4)
        torch.cuda.synchronize(); t0 = time.perf_counter()
        Trainer(config).fit(model, data)
        torch.cuda.synchronize(); wall = time.perf_counter() - t0
        print(f"NeuMF-{factors} {precision}: {len(data) * 5 / wall / 1e6:.1f} M samples/s "
              f"(epoch incl. sampling {wall:.1f} s; peak GPU memory "
              f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB)")
PY

if [ -n "${NCF_DATA_DIR:-}" ] && [ -d "$NCF_DATA_DIR/ml-1m-ncf" ]; then
  echo "== time to HR@10 0.70 on ml-1m-ncf (NeuMF-64, bf16) and full-ranking time"
  "$PY" - <<'PY'
import time
from ncf.data.datasets import load
from ncf.data.holdout import implicit_holdout
from ncf.recommender import Recommender
from ncf.training import Callback

ds = load("ml-1m-ncf")
held = implicit_holdout(ds, seed=0)
t0 = time.perf_counter()

class Stop(Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        print(f"epoch {epoch}: val HR@10 {logs['hr@10']:.4f} at {time.perf_counter() - t0:.1f} s")
        return logs["hr@10"] >= 0.70

rec = Recommender("neumf", factors=64, layers=(256, 128, 64), epochs=30, batch_size=65_536,
                  lr=0.004, train_options={"device": "cuda"}).fit(held.train, callbacks=[Stop()])
print(f"trained in {time.perf_counter() - t0:.1f} s (validation HR@10 stop at 0.70)")
rec.to("cuda")
test = rec.evaluate(held.test, "sampled", negatives=held.negatives, k=10)
print(f"test HR@10 {test['hr@10']:.4f} NDCG@10 {test['ndcg@10']:.4f}")
t1 = time.perf_counter()
full = rec.evaluate(held.test, "full", k=10)
print(f"full ranking of {len(held.test):,} users x {rec.n_items:,} items: "
      f"{time.perf_counter() - t1:.2f} s, recall@10 {full['recall@10']:.4f}")
PY
  echo "== the neural defaults on ml-1m-ncf (ncf train --model M, nothing else)"
  for m in gmf neumf mlp; do
    t0=$(date +%s)
    timeout 600 "$PY" -m ncf train --dataset ml-1m-ncf --model "$m" --no-progress \
      --out "${TMPDIR:-/tmp}/gpu_check_$m" --force 2>&1 | grep -E "^model|^hr@10|^ndcg@10|^done in" \
      || echo "$m: failed or timed out"
    echo "$m: $(( $(date +%s) - t0 )) s wall"
  done
  echo "== the paper preset's NeuMF-64 on ml-1m-ncf (ncf train --preset paper)"
  t0=$(date +%s)
  timeout 300 "$PY" -m ncf train --dataset ml-1m-ncf --preset paper --no-progress \
    --out "${TMPDIR:-/tmp}/gpu_check_paper" --force 2>&1 | grep -E "^model|^hr@10|^ndcg@10|^done in" \
    || echo "paper: failed or timed out"
  echo "paper: $(( $(date +%s) - t0 )) s wall"
else
  echo "== skipped ml-1m-ncf checks: set NCF_DATA_DIR to the folder holding ml-1m-ncf/"
fi
