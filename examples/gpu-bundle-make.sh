#!/usr/bin/env bash
# Rebuild from PyPI the offline bundle that examples/gpu-device-run.sh installs on the GPU machine (CPython
# 3.12, manylinux x86_64, no network there), then cut it into parts of 56 MB for the device tool:
#   bash examples/gpu-bundle-make.sh [BUNDLE=.gpu-bundle] [PARTS=.gpu-parts]     # both git-ignored
# BUNDLE/wh: vLLM 0.26.0 and its closure minus what the machine has (examples/gpu-provided.txt) and minus
# optional kernel packages, CTranslate2 4.8.5, diskcache, gguf, Snakemake 9.27.1 + matplotlib 3.11.2 with their
# dependencies; BUNDLE/src: llama-cpp-python 0.3.36's sdist, trimmed. Needs uv, pip, zip, and llmbench importable.
set -euo pipefail
B=${1:-.gpu-bundle}; PARTS=${2:-.gpu-parts}; WH=$B/wh; SRC=$B/src
PROVIDED=examples/gpu-provided.txt
# manylinux_2_35, not _2_28: llguidance 1.7.6 (vLLM's pin) has only a manylinux_2_31 wheel. The machine's
# CPython 3.12.3 is presumably Ubuntu 24.04's (glibc 2.39; not read there), which installs _2_35 wheels.
PLAT=manylinux_2_35_x86_64
[ -e "$B" ] && { echo "$B exists: remove it first" >&2; exit 2; }
mkdir -p "$WH" "$SRC"; T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
name() { basename "$1" | cut -d- -f1 | tr 'A-Z_.' 'a-z--'; }   # a wheel file's canonical project name

# 1. The vLLM closure with the project's own command. Not envs/vllm.yaml: the bundle goes into the machine's
#    python3 itself (pip --no-deps), so it must not bring the env's pandas/pyarrow pins or the harness (`..`).
#    CTranslate2, diskcache (llama-cpp-python's) and gguf resolve with it, so their pins are checked together.
#    numpy: vllm 0.26.0 pins numba==0.65.0, which declares numpy<2.5, so with the machine's numpy==2.5.2
#    provided the resolution fails; carrying numpy 2.3.5 instead would downgrade the machine's numpy under
#    torch, jax and cupy. As in the hand-made bundle, an override (UV_OVERRIDE, which the wheelhouse command's
#    uv reads) keeps 2.5.2: numba's numpy<2.5 is ignored, and the machine's own numba is used (risk: check there).
printf 'dependencies:\n  - python=3.12\n  - pip:\n%s\n' "$(printf '      - %s\n' vllm==0.26.0 ctranslate2==4.8.5 \
  diskcache==5.6.3 gguf==0.19.0)" > "$T/gpu-bundle.yaml"
echo "numpy==2.5.2" > "$T/override.txt"
UV_OVERRIDE="$T/override.txt" python3 -m llmbench wheelhouse "$T/gpu-bundle.yaml" --python 3.12 \
  --platform $PLAT -d "$WH" --provided "$PROVIDED" | grep -v '^ '
mv "$WH/wheelhouse.json" "$B/wheelhouse-resolved.json"   # the resolution's record, before the cuts below

# 2. What --provided cannot express: (a) packages the machine has in a version nobody wrote down (the
#    '#have' names of the provided file: --provided needs name==version), the venv seed (pip) among them;
#    (b) vLLM's optional kernel packages and what only they need (~530 MB, ../shared/notes/gpu-offline.md:
#    vLLM imports them lazily for particular kernels; a path that needs one fails there). The check in step 5
#    names a dependency that this list leaves dangling or stranded, should a new resolution change them.
KERNELS="humming-kernels nvidia-cuda-nvdisasm nvidia-cutlass-dsl-libs-cu12 nvidia-cutlass-dsl-libs-cu13
  pynvvideocodec tilelang tokenspeed-mla torchcodec   tokenspeed-triton z3-solver pyelftools nvidia-cuda-nvcc
  nvidia-cuda-crt nvidia-cuda-cccl nvidia-nvvm"
HAVE=$(sed -n 's/^#have //p' "$PROVIDED")
{ echo "# Left out of wh/ (vLLM closure, see ../wheelhouse-resolved.json for the provided ones):"
  for f in "$WH"/*.whl; do n=$(name "$f")
    for x in $HAVE; do [ "$n" = "$x" ] && { echo "$(basename "$f")  # on the machine"; rm "$f"; }; done
    for x in $KERNELS; do [ "$n" = "$x" ] && { echo "$(basename "$f")  # optional kernels"; rm "$f"; }; done
  done; } > "$WH/LEFT_OUT.txt"

# 3. Cut FlashAttention-2 (129 MB of the wheel; vLLM uses FA3 on Hopper) and the Blackwell kernels out of the
#    vllm wheel itself: no resolver can drop part of a wheel. Its RECORD still lists them (pip --no-deps
#    installs it anyway); on an Ampere card this bundle has no FlashAttention backend.
zip -q -d "$WH"/vllm-0.26.0-*.whl 'vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so' 'vllm/third_party/fmha_sm100/*'
echo "cut from the vllm wheel (zip -d): vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so vllm/third_party/fmha_sm100/*" \
  >> "$WH/LEFT_OUT.txt"

# 4. The driver and the report's plots, complete with their dependencies even where the machine has them
#    (as tested 2026-11-24; pip prefers what is installed): the recipe of examples/gpu-device-run.sh's header.
TGT=(--python-version 3.12 --implementation cp --only-binary=:all:)
for t in $(python3 -c 'from llmbench.planning.wheelhouse import platform_tags as p; print(*p("'$PLAT'"))')
do TGT+=(--platform "$t"); done
pip() { python3 -m pip -q --disable-pip-version-check "$@"; }
pip wheel --no-deps "connection_pool>=0.0.3" -w "$T/x"          # no wheel on PyPI
pip download "${TGT[@]}" -d "$T/x" --find-links "$T/x" snakemake==9.27.1
pip download "${TGT[@]}" -d "$T/x" --no-deps matplotlib==3.11.2 contourpy cycler fonttools kiwisolver pyparsing \
  pillow python-dateutil tzdata   # tzdata: python-dateutil 4 requires it, the machine lacks it
for f in "$T"/x/*.whl; do ls "$WH/$(name "$f")"-[0-9]*.whl >/dev/null 2>&1 || cp "$f" "$WH/"; done  # one version each

# 5. Check: every wheel's requirements (for CPython 3.12 on Linux x86_64) are in wh/, on the machine, or
#    deliberately left out; and nothing in wh/ is needed only by what was left out.
python3 - "$WH" "$PROVIDED" $KERNELS <<'EOF'
import sys, zipfile, glob, re
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as c, parse_wheel_filename
wh, prov, kernels = sys.argv[1], sys.argv[2], {c(k) for k in sys.argv[3:]}
have = {c(re.split("[=#]", l)[0]) for l in open(prov) if l.strip() and not l.startswith("# ")}
have |= {c(n) for l in open(prov) if l.startswith("#have ") for n in l.split()[1:]}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
       "platform_machine": "x86_64", "implementation_name": "cpython", "platform_python_implementation": "CPython",
       "extra": ""}
reqs, bundle, extras = {}, {}, {}
for f in glob.glob(f"{wh}/*.whl"):
    n = parse_wheel_filename(f.split("/")[-1])[0]; bundle[n] = f
    z = zipfile.ZipFile(f); meta = next(m for m in z.namelist() if m.endswith(".dist-info/METADATA"))
    reqs[n] = [Requirement(l.split(":", 1)[1]) for l in z.read(meta).decode().splitlines()
               if l.startswith("Requires-Dist:")]
while True:  # what each wheel needs, following the extras that others ask of it (fastapi[standard], ...)
    need, before = {}, sum(map(len, extras.values()))
    for n, rs in reqs.items():
        for r in rs:
            if any(not r.marker or r.marker.evaluate(dict(env, extra=e)) for e in {""} | extras.get(n, set())):
                need.setdefault(c(r.name), set()).add(n); extras.setdefault(c(r.name), set()).update(r.extras)
    if sum(map(len, extras.values())) == before:
        break
bad = [f"{d} (needed by {', '.join(sorted(b))})" for d, b in need.items() if d not in bundle.keys() | have | kernels]
roots = {"vllm", "ctranslate2", "diskcache", "gguf", "snakemake", "matplotlib"}
orphans = [n for n in bundle if n not in need and n not in roots]
print(f"check: {len(bundle)} wheels; missing: {bad or 'none'}; needed by nothing: {orphans or 'none'}")
sys.exit(1 if bad or orphans else 0)
EOF
ls "$WH"/*.whl | xargs -n1 basename | sed -E 's/^([^-]+)-([^-]+)-.*/\1==\2/; s/_/-/g' > "$WH/REQUIREMENTS.txt"

# 6. llama-cpp-python's sdist (built with CUDA on the machine), without what a build does not read: the
#    git data (.git), docs, and the vendored llama.cpp's docs, benches, media, CI files and vocab GGUFs (models/*.gguf*).
pip download --no-deps --no-binary=:all: -d "$T/sd" llama_cpp_python==0.3.36
(cd "$T/sd" && sha256sum llama_cpp_python-0.3.36.tar.gz) > "$SRC/SDIST_SHA256"
tar -xzf "$T"/sd/llama_cpp_python-0.3.36.tar.gz -C "$T/sd"
mv "$T/sd/llama_cpp_python-0.3.36" "$T/sd/llama-cpp-python-0.3.36"   # the name gpu-device-run.sh looks for
V="$T/sd/llama-cpp-python-0.3.36/vendor/llama.cpp"
rm -rf "$V"/../../{.git,docs} "$V"/{.git,docs,benches,media,.github,.devops} "$V"/models/*.gguf*
tar -czf "$SRC/llama-cpp-python-0.3.36.tar.gz" -C "$T/sd" llama-cpp-python-0.3.36

# 7. Sizes, then the parts.
du -sh "$WH" "$SRC"; echo "$(ls "$WH"/*.whl | wc -l) wheels"
python3 examples/gpu-bundle.py split "$B" "$PARTS" --part-mb 56
