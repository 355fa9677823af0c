"""OpenVINO IR: the HF model directory exported by optimum-intel, weights compressed by NNCF.

Params: ``PARAMS`` below (docs/options.md). int4 keeps the embedding/lm_head (and the share ``1 - ratio`` of the
rest) at the backup precision int8_asym, as optimum-cli does. Its group size defaults to 64, not optimum-cli's
128: 128 does not divide a hidden size of 576 (SmolLM2-135M), and NNCF then refuses with InvalidGroupSizeError
(checked 2026-11-27) unless group_size_fallback is ignore/adjust.

The directory holds what ``openvino_genai.LLMPipeline`` reads (openvino_model.xml/.bin, config.json,
generation_config.json, openvino_tokenizer.xml and openvino_detokenizer.xml from openvino_tokenizers) plus the
HF tokenizer files, so the engine tokenizes with the same tokenizer and chat template as the HF engine. The
manifest records the export call, the compression asked for and the one NNCF wrote into the IR's rt_info.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from llmbench.artifacts import refuse_synthetic
from llmbench.formats import TOKENIZER_FILES
from llmbench.formats.openvino import ir_facts
from llmbench.core.options import Option, in_range
from llmbench.provenance import versions

ENV = "openvino"
FORMAT = "openvino"  # OpenVINO IR + the converted and the HF tokenizers

WEIGHT_FORMATS = ("int8", "int4", "fp16", "fp32")
FALLBACKS = ("error", "ignore", "adjust")
INT4 = {"weight_format": ("int4",)}
PARAMS = {
    "weight_format": Option(str, "int8", "int8: NNCF per-channel weight compression of every MatMul/embedding; "
                            "int4: group-wise 4-bit weights; fp16/fp32: no quantization, weights stored as f16 or "
                            "f32", choices=WEIGHT_FORMATS),
    "sym": Option(bool, False, "symmetric int8/int4 (no zero points); int8/int4 only"),
    "group_size": Option(int, 64, "weights per quantization group, -1 = per output channel", when=INT4,
                         check=lambda v: None if v == -1 or v > 0 else "expected a positive int or -1 (per channel)"),
    "ratio": Option(float, 1.0, "share of the ratio-defining layers at 4 bit", check=in_range(0, 1, low_open=True),
                    when=INT4),
    "group_size_fallback": Option(str, "error", "what NNCF does with layers the group size does not divide",
                                  choices=FALLBACKS, when=INT4),
}
CHECKS = [lambda p: f"sym applies to int8/int4 only; weight_format is {p['weight_format']!r}"
          if p["sym"] and p["weight_format"] in ("fp16", "fp32") else None]

# Texts the converted OpenVINO tokenizer/detokenizer are checked on against the HF tokenizer.
CHECK_TEXTS = ("Hello there, général Kenobi! 123", "def f(x):\n    return x ** 2  # square\n",
               "Explain what a hash table is, in one sentence.", "   leading spaces and émojis 🙂 and 中文")


def quantization_kwargs(p: dict[str, Any]) -> dict[str, Any] | None:
    """The ``OVWeightQuantizationConfig`` arguments for resolved params (None: no weight quantization)."""
    if p["weight_format"] == "int8":
        return {"bits": 8, "sym": p["sym"]}
    if p["weight_format"] == "int4":
        return {"bits": 4, "sym": p["sym"], "group_size": p["group_size"], "ratio": float(p["ratio"]),
                "group_size_fallback": p["group_size_fallback"]}
    return None


def cli_equivalent(model_dir: Path, p: dict[str, Any]) -> str:
    cmd = f"optimum-cli export openvino --model {model_dir} --task text-generation-with-past " \
          f"--weight-format {p['weight_format']}"
    if p["weight_format"] == "int4":
        cmd += f" --group-size {p['group_size']} --ratio {float(p['ratio'])}"
        if p["group_size_fallback"] != "error":
            cmd += f" --group-size-fallback {p['group_size_fallback']}"
    if p["sym"]:
        cmd += " --sym"
    return cmd + " <artifact dir>"


def _expected_mode(p: dict[str, Any]) -> str | None:
    if p["weight_format"] in ("int8", "int4"):
        return f"{p['weight_format']}_{'sym' if p['sym'] else 'asym'}"
    return None


def _simplified_decoder(backend):
    """A copy of a HF fast tokenizer whose decoder is only its ByteLevel step, or None when that would not be the
    same decoder. GGUF-converted tokenizers (the embedded SmolLM2) carry a decoder Sequence [ByteFallback, Fuse,
    Replace('▁', ' '), ByteLevel] that openvino_tokenizers 2026.4 cannot convert ("index '2' out of range" in
    FuzeRagged); on a byte-level vocabulary with no <0xNN> byte tokens and no '▁', the first three steps change
    nothing. Checked here on every vocabulary id and on random sequences before it is used."""
    import random

    from tokenizers import Tokenizer, decoders

    spec = json.loads(backend.to_str()).get("decoder") or {}
    steps = spec.get("decoders") if spec.get("type") == "Sequence" else None
    if not steps or steps[-1].get("type") != "ByteLevel":
        return None
    for s in steps[:-1]:
        if s["type"] == "Replace" and not (s.get("pattern") == {"String": "\u2581"} and s.get("content") == " "):
            return None
        if s["type"] not in ("ByteFallback", "Fuse", "Replace"):
            return None
    vocab = backend.get_vocab()
    if any(re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", t) or "\u2581" in t for t in vocab):
        return None
    simple = Tokenizer.from_str(backend.to_str())
    bl = steps[-1]
    simple.decoder = decoders.ByteLevel(add_prefix_space=bl.get("add_prefix_space", True),
                                        trim_offsets=bl.get("trim_offsets", True), use_regex=bl.get("use_regex", True))
    n = backend.get_vocab_size()
    rng = random.Random(0)
    samples = [[i] for i in range(n)] + [[rng.randrange(n) for _ in range(64)] for _ in range(200)]
    for ids in samples:
        if backend.decode(ids, skip_special_tokens=False) != simple.decode(ids, skip_special_tokens=False):
            return None
    return simple, {"original": [s["type"] for s in steps], "used": "ByteLevel",
                    "checked": f"identical decode of all {n} single ids and 200 random 64-id sequences"}


def convert_tokenizers(model_dir: Path, out_dir: Path) -> dict[str, Any]:
    """openvino_tokenizer.xml + openvino_detokenizer.xml (openvino_tokenizers.convert_tokenizer), checked against
    the HF tokenizer. Returns what was done, for the manifest."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = tok.truncation_side = "left"  # as optimum-intel's export_tokenizer does for text generation
    info: dict[str, Any] = {"api": "openvino_tokenizers.convert_tokenizer(tokenizer, with_detokenizer=True)",
                            "decoder_simplified": None, "detokenizer": True}
    try:
        ov_tok, ov_detok = convert_tokenizer(tok, with_detokenizer=True)
    except Exception as e:  # noqa: BLE001 - the converter raises plain RuntimeErrors from C++
        info["first_attempt_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}"
        simplified = _simplified_decoder(tok.backend_tokenizer) if hasattr(tok, "backend_tokenizer") else None
        if simplified is not None:
            tok.backend_tokenizer.decoder = simplified[0].decoder
            info["decoder_simplified"] = simplified[1]
            ov_tok, ov_detok = convert_tokenizer(tok, with_detokenizer=True)
        else:
            ov_tok, ov_detok = convert_tokenizer(tok, with_detokenizer=False), None
            info["detokenizer"] = False
    ov.save_model(ov_tok, str(out_dir / "openvino_tokenizer.xml"))
    if ov_detok is not None:
        ov.save_model(ov_detok, str(out_dir / "openvino_detokenizer.xml"))

    # check the converted models against the HF tokenizer (the one the engine adapter encodes with)
    import openvino_genai

    hf = AutoTokenizer.from_pretrained(model_dir)
    ov_tokenizer = openvino_genai.Tokenizer(str(out_dir))
    enc_same, dec_same = [], []
    for text in CHECK_TEXTS:
        want = hf(text, add_special_tokens=False)["input_ids"]
        got = ov_tokenizer.encode(text, add_special_tokens=False).input_ids.data[0].tolist()
        enc_same.append(got == want)
        if ov_detok is not None:
            dec_same.append(ov_tokenizer.decode(want, skip_special_tokens=True)
                            == hf.decode(want, skip_special_tokens=True))
    info["check"] = {"texts": len(CHECK_TEXTS), "encode_identical": all(enc_same),
                     "decode_identical": all(dec_same) if dec_same else None}
    if not all(enc_same) or not all(dec_same):
        print(f"WARNING: the OpenVINO tokenizer differs from the HF tokenizer on some texts: {info['check']} "
              "(the openvino engine feeds HF token ids, so benchmarks are unaffected)", flush=True)
    return info


def _export(model_dir: Path, out_dir: Path, p: dict[str, Any], qkw: dict[str, Any] | None) -> dict[str, Any]:
    """optimum-intel's export of the HF model to out_dir (NNCF weight compression when ``qkw``; fp16: constants
    saved as f16 afterwards); returns the from_pretrained keyword arguments used."""
    import openvino as ov
    from optimum.intel import OVModelForCausalLM, OVWeightQuantizationConfig

    kwargs: dict[str, Any] = {"export": True, "compile": False}
    if qkw is None:
        kwargs["load_in_8bit"] = False  # no NNCF: weights as exported (f32), then saved as f16 or f32
    else:
        kwargs["quantization_config"] = OVWeightQuantizationConfig(**qkw)
    print(f"exporting {model_dir} with optimum-intel OVModelForCausalLM (openvino {ov.get_version()}), "
          f"weight_format={p['weight_format']} {qkw or ''} ...", flush=True)
    model = OVModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    model.save_pretrained(out_dir)  # openvino_model.xml/.bin (f32 constants unless compressed), configs
    if p["weight_format"] == "fp16":
        ov.save_model(model.model, str(out_dir / "openvino_model.xml"), compress_to_fp16=True)
    return kwargs


def _check_compression(p: dict[str, Any], applied: dict[str, Any] | None) -> None:
    """The compression NNCF recorded in the IR must be the one asked for (mode, and group size for int4)."""
    expected = _expected_mode(p)
    if expected is None and applied is not None:
        raise RuntimeError(f"openvino artifact: weight_format {p['weight_format']} asked for no compression but "
                           f"NNCF compressed the weights: {applied}")
    if expected is not None:
        if not applied or applied.get("mode") != expected:
            raise RuntimeError(f"openvino artifact: asked for {expected}, the IR records {applied}")
        if p["weight_format"] == "int4" and applied.get("group_size") != str(p["group_size"]):
            raise RuntimeError(f"openvino artifact: asked for group size {p['group_size']}, the IR records {applied}")


def build(model_dir: Path, model_manifest: dict[str, Any], params: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = params
    refuse_synthetic("openvino", model_manifest, "optimum-intel exports them")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    tokenizer_files = [f for f in TOKENIZER_FILES if (model_dir / f).exists()]
    if not {"tokenizer.json", "tokenizer.model"} & set(tokenizer_files):
        raise FileNotFoundError(f"openvino artifact: {model_dir} has no tokenizer.json or tokenizer.model")

    qkw = quantization_kwargs(p)
    kwargs = _export(model_dir, out_dir, p, qkw)
    tokenizer = convert_tokenizers(model_dir, out_dir)
    for name in tokenizer_files:  # the HF engine's own files (generation_config.json: the EOS it masks)
        shutil.copy(model_dir / name, out_dir / name)

    facts = ir_facts(out_dir / "openvino_model.xml")
    applied = facts["nncf_weight_compression"]
    _check_compression(p, applied)

    ov_config_path = out_dir / "openvino_config.json"
    return {
        "library": "optimum-intel",
        "library_versions": versions("openvino", "openvino-tokenizers", "openvino-genai", "optimum-intel", "optimum",
                                     "nncf", "transformers", "tokenizers", "torch"),
        "weight_format": p["weight_format"],
        "compression": {
            "requested": {k: v for k, v in p.items() if k != "weight_format"},
            "quantization_config": qkw,
            "applied": applied,  # NNCF's record in the IR's rt_info (None: not compressed)
        },
        "weight_constants_by_type": facts["weight_constants_by_type"],
        "export": {
            "api": "optimum.intel.OVModelForCausalLM.from_pretrained(model_dir, **kwargs).save_pretrained(out)",
            "kwargs": {k: (v if k != "quantization_config" else f"OVWeightQuantizationConfig(**{qkw})")
                       for k, v in kwargs.items()},
            "then": "openvino.save_model(model.model, 'openvino_model.xml', compress_to_fp16=True)"
                    if p["weight_format"] == "fp16" else None,
            "cli_equivalent": cli_equivalent(model_dir, p),
        },
        "openvino_config": json.loads(ov_config_path.read_text()) if ov_config_path.exists() else None,
        "tokenizer_conversion": tokenizer,
        "tokenizer_files": tokenizer_files,
    }
