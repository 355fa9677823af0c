"""Artifact formats: the facts a builder (``llmbench/artifacts``) and an engine (``llmbench/engines``) both need.

One module per format. A builder writes what an engine needs into the artifact's manifest; an engine reads the
manifest and falls back to the function here only for a manifest that predates that field. Engines and
builders import from here, never from each other, so either side can change without breaking the other.
No module here imports an engine library at import time (the planner imports them in the driver env).
"""

from __future__ import annotations

# The HF tokenizer files a builder copies into its artifact, so that every engine encodes prompts with the
# artifact's HF tokenizer and chat template exactly as the hf engine does (engines/_hf_tokens.py), and the
# generation config whose eos_token_id the engines mask as HF ``generate`` does.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "generation_config.json")
