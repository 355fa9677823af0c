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

# The files of an HF tokenizer as a model directory may hold them (BPE vocabularies besides tokenizer.json).
HF_TOKENIZER_FILES = (*TOKENIZER_FILES, "vocab.json", "merges.txt", "added_tokens.json")


def copy_tokenizer_files(model_dir, out_dir) -> dict[str, str]:
    """The model's tokenizer files copied byte for byte into ``out_dir``, never re-saved through a tokenizer class
    (``save_pretrained`` of a user's model can rewrite tokenizer_class or add a pad token, and then this artifact
    would encode other ids than its siblings); {file name: sha256}, for the manifest."""
    import hashlib
    import shutil
    from pathlib import Path

    copied = {}
    for name in HF_TOKENIZER_FILES:
        src = Path(model_dir) / name
        if src.exists():
            shutil.copyfile(src, Path(out_dir) / name)
            copied[name] = hashlib.sha256(src.read_bytes()).hexdigest()
    return copied
