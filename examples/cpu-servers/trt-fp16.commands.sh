#!/usr/bin/env bash
# TensorRT-LLM engine of smollm2-135m (llmbench artifact method trtllm_engine)
# Run it where tensorrt_llm imports (envs/trtllm.yaml, a CUDA GPU).
set -euo pipefail
OUT="${OUT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"  # the artifact directory
python -c 'from tensorrt_llm import Mapping; from tensorrt_llm.models.automodel import AutoModelForCausalLM; import sys; src, dst, dtype, tp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]); [AutoModelForCausalLM.from_hugging_face(src, dtype, mapping=Mapping(world_size=tp, rank=r, tp_size=tp)).save_checkpoint(dst, save_config=(r == 0)) for r in range(tp)]' /tmp/servers/resources/models/smollm2-135m "$OUT"/checkpoint float16 1
trtllm-build --checkpoint_dir "$OUT"/checkpoint --output_dir "$OUT"/engine --max_batch_size 64 --max_seq_len 2048 --gemm_plugin auto
