#!/usr/bin/env bash
# Run llmbench's GPU config (config/gpu.yaml) with Snakemake on a GPU machine that has no network, and collect
# what it measured under $OUT. Used for examples/gpu-*/ (see the README there).
#
#   examples/gpu-device-run.sh start [WAIT_S]    install, record the card, measure read bandwidth, start
#                                                snakemake in its own session (it survives this command),
#                                                wait up to WAIT_S seconds, collect if it finished
#   examples/gpu-device-run.sh collect [WAIT_S]  wait up to WAIT_S more seconds, then collect
#   examples/gpu-device-run.sh stage             copy the carried bundle parts (.gpu-parts/, from
#                                                examples/gpu-bundle.py split) to /tmp/st; once the
#                                                llama-cpp-python source is there, build it with CUDA in its
#                                                own session (it goes on while later parts arrive)
#   examples/gpu-device-run.sh install           join the parts (/tmp/b), install their wheels into python3,
#                                                wait for the llama.cpp build, check that each engine imports
#                                                and sees the GPU ($OUT/imports.txt); then `start` runs with
#                                                SKIP_INSTALL=1 (llmbench itself is still installed)
#
# The bundle for config/gpu.yaml (vLLM 0.26.0 and its closure, CTranslate2 4.8.5, llama-cpp-python 0.3.36's
# source, Snakemake + matplotlib wheels; examples/gpu-h100/README.md lists it) is larger than one call may
# carry: split it into parts of 56 MB and send one part per call, back to back (a warm machine keeps /tmp
# for 30 s between calls); rebuild it from PyPI with `bash examples/gpu-bundle-make.sh` (-> .gpu-bundle, .gpu-parts):
#   run(command="bash examples/gpu-device-run.sh stage", carry=[".gpu-parts/MANIFEST.json", ".gpu-parts/part00"])
#   ... one call per part ...
#   run(command="bash examples/gpu-device-run.sh stage && bash examples/gpu-device-run.sh install &&
#       SKIP_INSTALL=1 bash examples/gpu-device-run.sh start 480", carry=[".gpu-parts/MANIFEST.json",
#       ".gpu-parts/partNN", <the tokenizer files below>])
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
ST=/tmp/st                      # staged bundle parts
B=/tmp/b                        # the joined bundle
LLAMA_SITE=/tmp/llama-site      # llama-cpp-python built here with CUDA
export PYTHONPATH="$LLAMA_SITE${PYTHONPATH:+:$PYTHONPATH}"
LLMBENCH_LLAMACPP_SRC=$(ls -d $B/src/llama-cpp-python-*/vendor/llama.cpp /tmp/src-early/src/llama-cpp-python-*/vendor/llama.cpp 2>/dev/null | head -1)
export LLMBENCH_LLAMACPP_SRC  # the GGUF converter (convert_hf_to_gguf.py + gguf-py) of the same source
# the gguf builder reads GGUFs back with gguf-py: the copy that ships with that source
[ -n "$LLMBENCH_LLAMACPP_SRC" ] && export PYTHONPATH="$PYTHONPATH:$LLMBENCH_LLAMACPP_SRC/gguf-py"
WAIT_S=${2:-540}
OUT=${OUT:-/tmp/llmbench-out}
RUN=/tmp/llmbench-run          # the workflow runs in a copy, so a later re-sync of the repo cannot touch it
WH=${WH:-.wh-gpu}
CONFIG=${CONFIG:-config/gpu.yaml}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
T0=$(date +%s)

build_llama() {  # $1: the llama-cpp-python source dir; detached, logs to /tmp/llama-build.log
  [ -f /tmp/llama-build.started ] && return 0
  touch /tmp/llama-build.started
  echo "building llama-cpp-python with CUDA from $1 (detached; /tmp/llama-build.log)"
  LLAMA_SRC="$1" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PWD/envs/llamacpp-skip-common.cmake" \
    setsid bash -c 't=$(date +%s); python3 -m pip install -v --no-build-isolation --no-index --no-deps --target '"$LLAMA_SITE"' "$LLAMA_SRC" > /tmp/llama-build.log 2>&1; echo $? > /tmp/llama-build.rc; echo $(( $(date +%s) - t )) > /tmp/llama-build.s' \
    < /dev/null > /dev/null 2>&1 &
}

if [ "$PHASE" = stage ]; then
  mkdir -p "$ST" && cp .gpu-parts/* "$ST/" && ls -la "$ST" | tail -n +2
  # the source (a .tar.gz) travels first in the bundle: extract what has arrived (a part may end mid-file)
  if [ ! -f /tmp/llama-build.started ]; then
    mkdir -p /tmp/src-early && cat $(ls "$ST"/part* | sort) | tar -x -C /tmp/src-early 2>/dev/null
    if python3 examples/gpu-bundle.py check-tree "$ST" /tmp/src-early src; then
      for tgz in /tmp/src-early/src/*.tar.gz; do tar -xzf "$tgz" -C /tmp/src-early/src; done
      build_llama "$(ls -d /tmp/src-early/src/llama-cpp-python-*/ | head -1)"
    fi
  fi
  exit 0
fi

if [ "$PHASE" = install ]; then
  t=$(date +%s)
  python3 examples/gpu-bundle.py join "$ST" "$B" || exit 2
  python3 -m pip install -q --no-index --no-deps --no-compile "$B"/wh/*.whl 2>&1 | tail -5
  echo "installed $(ls "$B"/wh/*.whl | wc -l) wheels in $(( $(date +%s) - t )) s"
  # nvidia-cutlass-dsl without its CUDA-toolkit libraries (nvidia-cutlass-dsl-libs-cu13, left out of the bundle)
  # makes vLLM 0.26.0 fail at model init ("No CTK flavor installed", seen on an H100 2026-12-07), while a
  # missing `cutlass` module is handled: hide the package's .pth, so `import cutlass` raises ImportError.
  rm -fv "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"/nvidia_cutlass_dsl*.pth
  for tgz in "$B"/src/*.tar.gz; do tar -xzf "$tgz" -C "$B/src"; done
  [ -f /tmp/llama-build.started ] || build_llama "$(ls -d "$B"/src/llama-cpp-python-*/ | head -1)"
  # CTranslate2 4.8.5 dlopens libcublas.so.12 (CUDA 12); the machine has CUDA 13's cuBLAS from torch's wheels.
  # Offer it under the 12 name in a private folder and let CTranslate2's check below say whether it serves.
  # (torch's cu130 wheels: site-packages/nvidia/cu13/lib or nvidia/cublas/lib; the first found is offered)
  cub=$(dirname "$(find "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia" -name 'libcublas.so.13*' 2>/dev/null | head -1)" 2>/dev/null)
  if [ -n "$cub" ] && [ -f "$cub/libcublas.so.13" ]; then
    mkdir -p /tmp/cublas12 && ln -sf "$cub/libcublas.so.13" /tmp/cublas12/libcublas.so.12 &&
      ln -sf "$cub/libcublasLt.so.13" /tmp/cublas12/libcublasLt.so.12
    echo "libcublas.so.12 -> $cub/libcublas.so.13 (in /tmp/cublas12, on LD_LIBRARY_PATH)"
  else
    echo "no CUDA 13 cuBLAS found under nvidia.cublas: CTranslate2 on CUDA will not load"
  fi
  while [ ! -f /tmp/llama-build.rc ] && [ $(( $(date +%s) - t )) -lt "${LLAMA_WAIT_S:-420}" ]; do sleep 5; done
  echo "llama-cpp-python build: rc $(cat /tmp/llama-build.rc 2>/dev/null || echo 'still running') after $(cat /tmp/llama-build.s 2>/dev/null || echo '?') s"
  tail -3 /tmp/llama-build.log; cp /tmp/llama-build.log "$OUT/" 2>/dev/null
  export LD_LIBRARY_PATH="/tmp/cublas12${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  python3 - > "$OUT/imports.txt" 2>&1 <<'EOF'
import traceback
def check(name, fn):
    try:
        print(f"{name}: {fn()}")
    except Exception as e:
        print(f"{name}: FAILED {type(e).__name__}: {e}")
        traceback.print_exc(limit=3)
def vllm_():
    import vllm
    return f"vllm {vllm.__version__} from {vllm.__file__}"
def ct2_():
    import ctranslate2
    return (f"ctranslate2 {ctranslate2.__version__}, CUDA devices {ctranslate2.get_cuda_device_count()}, "
            f"compute types {sorted(ctranslate2.get_supported_compute_types('cuda'))}")
def llama_():
    import llama_cpp
    return f"llama_cpp {llama_cpp.__version__} from {llama_cpp.__file__}, gpu offload {llama_cpp.llama_supports_gpu_offload()}"
for n, f in (("vllm", vllm_), ("ctranslate2", ct2_), ("llama_cpp", llama_)):
    check(n, f)
EOF
  grep -v "^  " "$OUT/imports.txt"
  exit 0
fi

export LD_LIBRARY_PATH="/tmp/cublas12${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ "$PHASE" = start ]; then
  { date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit,temperature.gpu --format=csv; } > "$OUT/nvidia-smi.txt" 2>&1
  cat "$OUT/nvidia-smi.txt"
  mkdir -p "$RUN"
  tar --exclude=./.wh-gpu --exclude=./.gpu-parts --exclude=./.gpu-bundle --exclude=./.git -cf - . | tar -xf - -C "$RUN"
  if [ -z "${SKIP_INSTALL:-}" ]; then
    python3 -m pip install -q --no-index --find-links "$WH" snakemake==9.27.1 || { echo "snakemake install failed"; exit 2; }
    python3 -m pip install -q --no-index --no-deps --find-links "$WH" matplotlib==3.11.2 contourpy cycler fonttools \
      kiwisolver pyparsing pillow python-dateutil || echo "matplotlib install failed: the plots rule will fail"
  fi
  python3 -m pip install -q --no-deps --no-index --no-build-isolation -e "$RUN" ||
    { echo "editable install failed: using PYTHONPATH=$RUN/workflow"; export PYTHONPATH="$RUN/workflow:$PYTHONPATH"; }
  if [ -d "$RUN/.wh-bnb/site" ]; then  # bitsandbytes for the hf-bnb variants (software_envs none: jobs inherit it)
    export PYTHONPATH="$RUN/.wh-bnb/site${PYTHONPATH:+:$PYTHONPATH}"
    python3 -c "import bitsandbytes as b; print('bitsandbytes', b.__version__, 'from', b.__file__)" || echo "bitsandbytes does not import"
  fi
  { python3 --version; python3 -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|accelerate|safetensors|tokenizers|snakemake|pandas|pyarrow|llmbench|numpy|matplotlib|vllm|ctranslate2|triton|flashinfer-python|gguf) "; python3 -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, llama_cpp.__file__)" 2>&1 | tail -1; uname -a; nproc; } > "$OUT/env.txt"
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
  export CONFIG FIRST
  rm -f snakemake.rc  # a warm machine keeps the last run's: collect would take it for this one
  # Artifacts first, side by side on the host's cores (nothing is measured meanwhile), then every measuring job
  # alone (--cores 1): a benchmark never shares the machine with a build. FIRST: targets (benchmark outputs) to
  # run before the rest, in this order, so the lines that matter most are in if the lease ends early.
  setsid bash -c 'python3 -m snakemake --cores ${BUILD_CORES:-8} --resources gpu=1 --configfile "$CONFIG" --keep-going --until build_artifact > snakemake-build.out 2>&1;
    for t in ${FIRST:-}; do python3 -m snakemake $t --cores 1 --resources gpu=1 --configfile "$CONFIG" --keep-going >> snakemake-first.out 2>&1; done;
    python3 -m snakemake --cores 1 --resources gpu=1 --configfile "$CONFIG" --keep-going > snakemake.out 2>&1; echo $? > snakemake.rc' < /dev/null > /dev/null 2>&1 &
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
  # one file: the device tool brings back at most 8 files a call
  tar -czf "$OUT/report.tar.gz" results/plots results/report results/report.html 2>/dev/null
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
