#!/usr/bin/env bash
# The CUDA check, in one go on a GPU machine (gan-cli and its dependencies installed, gan-train on PATH):
#   bash benchmarks/gpu_check.sh OUTDIR
# 1. smoke: train (with checkpoints, grids, metrics), resume, sample and evaluate on the GPU; check the files;
# 2. the speed table against the tutorial-style loop (bench.py --device cuda) -> OUTDIR/results-cuda.json;
# 3. the other speed settings train: float16 with GradScalers, float32, torch.compile;
# 4. quality of the fast defaults at equal steps (float32 vs auto, 3 seeds) -> OUTDIR/speed_quality.md;
# 5. steps/s of the speed settings side by side (step_speed.py);
# 6. an image folder on the GPU: in GPU memory and memory-mapped (pinned, asynchronous copies), gan-eval on it,
#    and the folder row of the speed table (bench.py --folder).
# Parts run in that order, each with its own time limit, within BUDGET seconds in all; one that fails does
# not stop the rest. The whole output goes to OUTDIR/gpu_check.log, a summary to stdout.
set -u
out=${1:?usage: gpu_check.sh OUTDIR}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-1500}         # seconds for all parts together (each process starts in 10-20 s on an H200)
SECONDS_PER_CASE=${SECONDS_PER_CASE:-4}
QUALITY_STEPS=${QUALITY_STEPS:-1000}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log=$out/gpu_check.log
runs=$(mktemp -d)
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONUNBUFFERED=1 GAN_CLI_CACHE=$runs/cache DEVICE QUALITY_STEPS out runs here

part() {  # part NAME LIMIT COMMAND...: run with the smaller of LIMIT and what is left of BUDGET
    local name=$1 limit=$2 left=$((BUDGET - SECONDS)) t0=$SECONDS rc
    shift 2
    ((left < limit)) && limit=$left
    if ((limit < 10)); then echo "== $name: skipped (budget spent)"; return; fi
    echo "==== $name" >>"$log"
    timeout -k 5 "$limit" bash -c '"$@"' part "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: rc $rc in $((SECONDS - t0)) s$( ((rc == 124)) && echo " (stopped at its ${limit} s limit)")"
}

smoke() {
    local d=$runs/smoke common="device=$DEVICE trainer.log_every=50 hydra.run.dir=$runs/smoke"
    gan-train $common trainer.steps=300 trainer.ckpt_every=100 trainer.sample_every=100 trainer.eval_every=300 \
        eval.n=1000 trainer.ema_decay=0.999 || return
    gan-train $common trainer.steps=400 resume="$d" || return
    gan-sample ckpt="$d" n=64 device=$DEVICE out="$d/generated" || return
    gan-eval ckpt="$d" n=1000 device=$DEVICE || return
    cp "$d/generated/grid.png" "$out/smoke_grid.png"
    python3 - "$d" <<'EOF'
import json, sys
from pathlib import Path
import torch
d = Path(sys.argv[1])
ck = torch.load(d / "checkpoints/last.pt", weights_only=True)
assert ck["step"] == 400, ck["step"]
steps = sorted(p.name for p in (d / "checkpoints").glob("step_*.pt"))
events = list((d / "tb").rglob("events.*"))
metrics = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
device = {t.device.type for t in ck["G"].values()}
print(f"smoke: last.pt at step {ck['step']}, weights saved from {device}, checkpoints {steps}, "
      f"{len(events)} event files, last metrics: {metrics[-1]}")
EOF
}

modes() {
    local rc=0 variant
    for variant in "trainer.precision=16" "model=mlp trainer.precision=16" "trainer.precision=32 trainer.channels_last=false" \
                   "trainer.compile=true"; do
        gan-train device=$DEVICE trainer.steps=200 trainer.log_every=50 trainer.ckpt_every=0 trainer.sample_every=0 \
            $variant hydra.run.dir="$runs/modes/${variant//[ =]/_}" \
            && test -s "$runs/modes/${variant//[ =]/_}/checkpoints/last.pt" \
            && echo "modes: $variant: trained 200 steps, last.pt written" >>"$out/summary.txt" \
            || { rc=1; echo "modes: $variant: FAILED" >>"$out/summary.txt"; }
    done
    return $rc
}

quality() {
    local check="device=$DEVICE trainer.steps=$QUALITY_STEPS trainer.eval_every=$QUALITY_STEPS eval.n=2000 trainer.ckpt_every=0"
    check="$check trainer.sample_every=$QUALITY_STEPS"
    gan-train -m trainer.precision=32 trainer.channels_last=false seed=0,1,2 $check hydra.sweep.dir=$runs/quality/fp32 || return
    gan-train -m seed=0,1,2 $check hydra.sweep.dir=$runs/quality/auto || return
    python3 "$here/speed_quality.py" "$runs/quality/fp32" "$runs/quality/auto" | tee "$out/speed_quality.md"
}

steps() {
    local v=(
        "trainer.precision=32 trainer.channels_last=false" "trainer.precision=32" "trainer.precision=bf16"
        "trainer.precision=16" "trainer.compile=true")
    python3 "$here/step_speed.py" --device $DEVICE --rounds 10 "${v[@]}"
    python3 "$here/step_speed.py" --device $DEVICE --rounds 10 "${v[@]/%/ data.image_size=64}"
}

folders() {
    local rc=0 share
    (cd "$here" && python3 -c "import bench, sys; bench.write_digit_folder(sys.argv[1])" "$runs/digits") || return
    for share in 0.5 0; do
        gan-train device=$DEVICE data=folder data.path="$runs/digits" data.channels=1 data.image_size=28 \
            data.ram_share=$share data.mirror=true trainer.steps=200 trainer.log_every=50 trainer.ckpt_every=0 \
            hydra.run.dir="$runs/folder-$share" \
            && gan-eval ckpt="$runs/folder-$share" n=1000 device=$DEVICE \
            && echo "folders: data.ram_share=$share: trained 200 steps and scored" >>"$out/summary.txt" \
            || { rc=1; echo "folders: data.ram_share=$share: FAILED" >>"$out/summary.txt"; }
    done
    python3 "$here/bench.py" --folder --cases dcgan-28-64 --device $DEVICE --seconds $SECONDS_PER_CASE --repeats 1 \
        --out "$out/folder-cuda.json" || rc=1
    return $rc
}

export -f smoke modes quality steps folders
: >"$out/summary.txt"
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"; } 2>&1 | tee -a "$log"
part smoke 240 smoke
part bench 480 python3 "$here/bench.py" --cases "${BENCH_CASES:-mlp-28-64,mlp-28-256,dcgan-32-64,dcgan-32-256,dcgan-64-64,dcgan-64-256}" --device $DEVICE --seconds $SECONDS_PER_CASE --repeats 1 --out "$out/results-cuda.json"
part modes 240 modes
part quality 300 quality
part steps 240 steps
part folders 240 folders
echo "---- summary"
cat "$out/summary.txt"
grep -E "^smoke:|^\| |steps/s" "$log"
