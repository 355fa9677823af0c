#!/usr/bin/env bash
# Run llmbench's GPU config (config/gpu.yaml) with Snakemake on a GPU machine that has no network, and collect
# what it measured under $OUT. Used for examples/gpu-*/ (see the README there).
#
#   examples/gpu-device-run.sh start [WAIT_S]    install, record the card, measure read bandwidth, start
#                                                snakemake in its own session (it survives this command),
#                                                wait up to WAIT_S seconds, collect if it finished
#   examples/gpu-device-run.sh collect [WAIT_S]  wait up to WAIT_S more seconds, then collect
#
# Needs on that machine: python3 with torch (CUDA), transformers, pandas, pyarrow, psutil, PyYAML; and, copied
# along (git-ignored): .wh-gpu/ (a wheelhouse of snakemake==9.27.1 and its dependencies for CPython 3.12) and
# the tokenizer files of resources/models/smollm2-135m (tokenizer.json, tokenizer_config.json,
# chat_template.jinja), which config/gpu.yaml's synthetic model borrows. Build the wheelhouse on a machine
# with PyPI (and add /.wh-gpu/ to .git/info/exclude):
#   pip wheel --no-deps "connection_pool>=0.0.3" -w .wh-gpu      # it has no wheel on PyPI
#   pip download snakemake==9.27.1 --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d .wh-gpu --find-links .wh-gpu
#   pip download --no-deps matplotlib==3.11.2 contourpy cycler fonttools kiwisolver pyparsing pillow \
#     python-dateutil (same --python-version/--only-binary/--platform/-d flags)   # the report's plots
# (52 MB in all: with the tokenizer files it stays under the device tool's 64 MiB carry limit)
# For the bitsandbytes lines (config/examples/gpu-bnb.yaml) also carry .wh-bnb/site: the bitsandbytes 0.50.2
# wheel unpacked with only its CPU and CUDA 13.0 libraries (4.5 MB; the whole wheel is 41 MiB):
#   pip download --no-deps bitsandbytes==0.50.2 -d /tmp/bnb && mkdir -p .wh-bnb/site && cd .wh-bnb/site &&
#   unzip -q /tmp/bnb/bitsandbytes-0.50.2-*.whl && ls bitsandbytes/*.so | grep -v -E "_cpu.so|cuda130" | xargs rm
# With this workplace's device tool: run(command="bash examples/gpu-device-run.sh start 540", carry=[".wh-gpu",
#   "resources/models/smollm2-135m/tokenizer.json", "resources/models/smollm2-135m/tokenizer_config.json",
#   "resources/models/smollm2-135m/chat_template.jinja"]).
set -u
PHASE=${1:-start}
WAIT_S=${2:-540}
OUT=${OUT:-/tmp/llmbench-out}
RUN=/tmp/llmbench-run          # the workflow runs in a copy, so a later re-sync of the repo cannot touch it
WH=${WH:-.wh-gpu}
CONFIG=${CONFIG:-config/gpu.yaml}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
T0=$(date +%s)

if [ "$PHASE" = start ]; then
  { date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit,temperature.gpu --format=csv; } > "$OUT/nvidia-smi.txt" 2>&1
  cat "$OUT/nvidia-smi.txt"
  mkdir -p "$RUN"
  tar --exclude=./.wh-gpu --exclude=./.git -cf - . | tar -xf - -C "$RUN"
  if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m pip install -q --no-index --find-links "$WH" snakemake==9.27.1 || { echo "snakemake install failed"; exit 2; }
    python3 -m pip install -q --no-index --no-deps --find-links "$WH" matplotlib==3.11.2 contourpy cycler fonttools \
      kiwisolver pyparsing pillow python-dateutil || echo "matplotlib install failed: the plots rule will fail"
    python3 -m pip install -q --no-deps --no-index --no-build-isolation -e "$RUN" ||
      { echo "editable install failed: using PYTHONPATH=$RUN/workflow"; export PYTHONPATH="$RUN/workflow"; }
  fi
  if [ -d "$RUN/.wh-bnb/site" ]; then  # bitsandbytes for the hf-bnb variants (software_envs none: jobs inherit it)
    export PYTHONPATH="$RUN/.wh-bnb/site${PYTHONPATH:+:$PYTHONPATH}"
    python3 -c "import bitsandbytes as b; print('bitsandbytes', b.__version__, 'from', b.__file__)" || echo "bitsandbytes does not import"
  fi
  { python3 --version; python3 -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|accelerate|safetensors|tokenizers|snakemake|pandas|pyarrow|llmbench|numpy|matplotlib) "; uname -a; nproc; } > "$OUT/env.txt"
  cat "$OUT/env.txt"
  # Memory read bandwidth of this card, measured before the workflow (GPU otherwise idle): best of 20 sums
  # over a 4 GiB fp16 tensor (bytes read / time), and a device-to-device copy (bytes read + written).
  python3 - "$OUT/bandwidth.json" <<'EOF'
import json, sys, time, torch
dev = torch.device("cuda")
n = 2 * 1024**3                      # 2 Gi fp16 elements = 4 GiB
x = torch.empty(n, dtype=torch.float16, device=dev).normal_()
def timed(fn, reps=20, warm=3):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); e.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    return ts
nbytes = x.numel() * x.element_size()
sum_t = timed(lambda: x.sum())
y = torch.empty_like(x)
copy_t = timed(lambda: y.copy_(x))
ts = sorted(sum_t); cs = sorted(copy_t)
res = {
    "device_name": torch.cuda.get_device_name(dev), "torch": torch.__version__,
    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    "read_sum": {"bytes": nbytes, "reps": len(ts), "best_s": ts[0], "median_s": ts[len(ts) // 2],
                 "best_bytes_per_s": nbytes / ts[0], "median_bytes_per_s": nbytes / ts[len(ts) // 2]},
    "copy_d2d": {"bytes_read_plus_written": 2 * nbytes, "reps": len(cs), "best_s": cs[0],
                 "best_bytes_per_s": 2 * nbytes / cs[0], "median_bytes_per_s": 2 * nbytes / cs[len(cs) // 2]},
    "method": "torch.sum over a 4 GiB fp16 tensor of normal random values (read only) and Tensor.copy_ of it "
              "(read + write), CUDA events, 3 warm-ups, 20 timed reps",
}
json.dump(res, open(sys.argv[1], "w"), indent=2)
print(f"read (sum) best {res['read_sum']['best_bytes_per_s']/1e12:.3f} TB/s, median {res['read_sum']['median_bytes_per_s']/1e12:.3f}; "
      f"copy d2d best {res['copy_d2d']['best_bytes_per_s']/1e12:.3f} TB/s")
EOF
  cd "$RUN" || exit 2
  python3 -m snakemake -n --cores 1 --resources gpu=1 --configfile "$CONFIG" > snakemake-dryrun.out 2>&1 || { cat snakemake-dryrun.out; exit 3; }
  export CONFIG
  rm -f snakemake.rc  # a warm machine keeps the last run's: collect would take it for this one
  setsid bash -c 'python3 -m snakemake --cores 1 --resources gpu=1 --configfile "$CONFIG" > snakemake.out 2>&1; echo $? > snakemake.rc' < /dev/null > /dev/null 2>&1 &
  echo "snakemake started in $RUN"
fi

cd "$RUN" || exit 2
seen=0
while [ ! -f snakemake.rc ] && [ $(( $(date +%s) - T0 )) -lt "$WAIT_S" ]; do
  sleep 10
  latest=$(ls -t logs/benchmark/*/*/*/*.log 2>/dev/null | head -1)
  line=$( [ -n "$latest" ] && grep '^\[' "$latest" | tail -1)
  if [ -n "$line" ] && [ "$line" != "$seen" ]; then
    seen=$line
    echo "$(date +%T) $(basename "$(dirname "$latest")"): $line"
  fi
done

collect() {
  cp results/tables/latency.md results/tables/latency.parquet results/tables/requests.parquet "$OUT/" 2>/dev/null
  # the report, built here from this run (its wall time is the report step's, printed)
  t=$(date +%s)
  python3 -m snakemake --cores 1 --resources gpu=1 --configfile "$CONFIG" --report results/report.html > report.out 2>&1 &&
    echo "snakemake --report took $(( $(date +%s) - t )) s" || { echo "snakemake --report failed:"; tail -20 report.out; }
  cp -r results/plots results/report "$OUT/" 2>/dev/null
  cp results/report.html "$OUT/" 2>/dev/null
  grep -h "^\[\|rule \|Finished" .snakemake/log/*.log 2>/dev/null | grep -E "rule (plots|report_tables)" -A3 | head -20
  tar -czf "$OUT/logs.tar.gz" logs .snakemake/log snakemake.out snakemake-dryrun.out snakemake.rc report.out results/runs 2>/dev/null
}
if [ -f snakemake.rc ]; then
  echo "snakemake exited with $(cat snakemake.rc)"
  tail -5 snakemake.out
  collect
  grep -h "loaded in\|compil" logs/benchmark/*/*/*/*.log | cut -c1-400
  cat results/tables/latency.md 2>/dev/null
  exit "$(cat snakemake.rc)"
else
  echo "snakemake still running after ${WAIT_S}s; run '$0 collect' next"
  tar -czf "$OUT/logs-partial.tar.gz" logs .snakemake/log snakemake.out 2>/dev/null
  tail -3 snakemake.out
  exit 100
fi
