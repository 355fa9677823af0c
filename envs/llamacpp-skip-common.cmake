# Included at the end of llama.cpp's project() while llama-cpp-python builds it (CMAKE_PROJECT_llama.cpp_INCLUDE,
# set on the requirement line in envs/llamacpp.yaml). llama-cpp-python forces the cache entry LLAMA_BUILD_COMMON
# ON, but none of the libraries its wheel loads (libllama, libggml*) link llama.cpp's `common` library (62 of the
# build's 140 compile steps, half its time); this normal variable shadows that entry in llama.cpp's scope (policy
# CMP0077: option() leaves a normal variable alone), so `common` is neither built nor installed.
set(LLAMA_BUILD_COMMON OFF)
