#!/usr/bin/env bash
# EXL2 quantization of smollm2-135m (llmbench artifact method exl2)
# Run it where exllamav2 imports (envs/exllamav2.yaml, a CUDA GPU); OUT defaults to this directory.
set -euo pipefail
OUT="${OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"  # the artifact directory
python -m exllamav2.conversion.convert_exl2 -i /tmp/servers/resources/models/smollm2-135m -o "$OUT"/work -cf "$OUT" -b 4.0 -hb 6 -r 100 -mr 16 -l 2048 -ml 2048
