"""The engine contract (core/engine.py), checked for every engine of the registry, on the embedded model.

For each case of every engine's CONTRACT: exactly N new tokens past EOS (masked or emitted), streamed ids equal
to the returned ones, greedy decoding deterministic, the latency scenario's own count checks, input ids equal to the HF tokenizer's,
finite teacher-forced scores of the right length (engines with ``score``), and, where the entry names an fp32
path, the same greedy tokens as HF transformers fp32. The entries are discovered from the registry: each engine
module declares its cases in ``CONTRACT`` (core/engine.py ContractCase), so adding an engine adds no line here.

An entry runs only where its library imports; in the driver that is hf alone. ``test_contract_in_env[<engine>]``
(slow, like the whole file, so after the quick tests) runs this file with ``-k [<engine>]`` in the engine's own env,
built once per session by conftest's ``engine_envs``, and fails if that run fails, passes nothing or skips
anything. By hand, in an env that has pytest:
    PYTHONPATH=workflow <env>/bin/python -m pytest tests/test_engine_contract.py -k "[ct2] and not in_env"
The artifacts are built here with the builders, which run in the engine's env (reference: the model itself).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmbench import artifacts, engines
from llmbench.core.engine import ContractArtifact, ContractCase, has_hook
from llmbench.core import prompts

from conftest import REPO

pytestmark = pytest.mark.slow  # loads models and builds artifacts
N = 16
# Short answers: greedy decoding wants <|im_end|> well before N tokens for at least one of them.
SHORT = ["Hi", "What is 2+2? Answer with a number only.", "Say OK."]
LONG = ["Write a haiku about the sea.", "Explain what a hash table is."]
HF_FP32 = {"device": "cpu", "dtype": "float32", "attn_implementation": "sdpa", "num_threads": 2}


@dataclass
class Entry:
    """One case of an engine's ``CONTRACT`` (core/engine.py ContractCase), with its engine."""

    engine: str
    case: ContractCase

    @property
    def env(self) -> str:
        return engines.env(self.engine, self.options)

    @property
    def id(self) -> str:
        return self.case.name or self.engine


for _field in ("library", "artifact", "options", "fp32", "bytes_per_param", "kv_element_bytes"):
    setattr(Entry, _field, property(lambda self, f=_field: getattr(self.case, f)))


def discovered() -> list[Entry]:
    """Every case every in-process engine of the registry declares (built-ins and installed plug-ins)."""
    return [Entry(name, case) for name in engines.names() if engines.adapter_class(name) is not None
            for case in getattr(engines.module(name), "CONTRACT", ())]


ENTRIES = discovered()


def _ids(entries):
    return [e.id for e in entries]


def _has_score(e: Entry) -> bool:
    return has_hook(engines.adapter_class(e.engine), "score")


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def model_dir(embedded_model_dir) -> Path:
    return embedded_model_dir


@pytest.fixture(scope="session")
def built(model_dir, tmp_path_factory):
    """Artifact -> its directory, each built once per session with its builder (in this interpreter)."""
    cache: dict[str, Path] = {}

    def get(a: ContractArtifact) -> Path:
        if a.method is None:
            return model_dir
        key = json.dumps([a.method, a.params], sort_keys=True)
        if key not in cache:
            out = tmp_path_factory.mktemp("contract") / a.method
            artifacts.build(a.method, model_dir, artifacts.resolved(a.method, a.params), out)
            cache[key] = out
        return cache[key]

    return get


@pytest.fixture(scope="module", params=ENTRIES, ids=_ids(ENTRIES))
def entry(request) -> Entry:
    e: Entry = request.param
    if importlib.util.find_spec(e.library) is None:
        pytest.skip(f"{e.library} is not importable here; test_contract_in_env[{e.id}] runs this in the "
                    f"{e.env} env")
    return e


@pytest.fixture(scope="module")
def load(entry, built):
    """(artifact, options) -> a loaded engine of this entry, loaded once; all closed after the entry's tests
    (vLLM keeps worker processes until closed)."""
    from llmbench.provenance import manifest

    cache: dict[str, object] = {}

    def get(a: ContractArtifact, options: dict):
        key = json.dumps([a.method, a.params, options], sort_keys=True)
        if key not in cache:
            d = built(a)
            eng = engines.create(entry.engine)
            eng.loaded = eng.load(d, manifest.verify(d), engines.resolved(entry.engine, options))
            cache[key] = eng
        return cache[key]

    yield get
    for eng in cache.values():
        engines.close(eng)


@pytest.fixture(scope="module")
def engine(entry, load):
    return load(entry.artifact, entry.options)


@pytest.fixture(scope="module")
def reference(model_dir):
    """HF transformers fp32 on the embedded model: the tokens every fp32 path must reproduce."""
    from llmbench.provenance import manifest

    ref = engines.create("hf")
    ref.load(model_dir, manifest.read(model_dir), engines.resolved("hf", HF_FP32))
    return ref


@pytest.fixture(scope="module")
def hf_tokens(model_dir):
    """The HF tokenizer of the model behind the shared encode/tokenize_plain (no model loaded)."""
    from transformers import AutoTokenizer

    from llmbench.engines._hf_tokens import HFTokenizerMixin

    tok = HFTokenizerMixin()
    tok.tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return tok


def _model_facts(model_dir: Path) -> tuple[set[int], int]:
    """(the end-of-generation ids HF generate masks under min_new_tokens, the vocabulary size)."""
    eos = json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"]
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    return set(eos if isinstance(eos, list) else [eos]), vocab


# ------------------------------------------------------------------------------------------------ the contract

def test_exactly_n_new_tokens_past_eos_streamed_as_returned(entry, engine, model_dir):
    """N tokens even where the model wants to stop, each handed to on_token as it is returned, and no end
    token among them: every engine masks EOS (as HF's min_new_tokens does), none emits it and goes on. Witness
    that the model did want to stop: with ``score``, the teacher-forced argmax at a generated position."""
    eos, _ = _model_facts(model_dir)
    for prompt in SHORT:
        ids = engine.encode(prompt)
        streamed = []
        gen = engine.generate(ids, N, streamed.append)
        assert len(gen.ids) == N, (prompt, engine.decode(gen.ids))
        assert gen.ids is not streamed and streamed == list(gen.ids)
        assert all(type(t) is int for t in streamed) and isinstance(gen.engine_metrics, dict)
        assert not eos & set(gen.ids), (prompt, "an end token was emitted, not masked", engine.decode(gen.ids))
        predicted = engine.score(ids + gen.ids)[1][len(ids) - 1:] if _has_score(entry) else []
        if eos & set(predicted):
            break
    else:
        if _has_score(entry):
            pytest.fail(f"no prompt of {SHORT} reached an end token in {N} tokens: EOS suppression untested")


def test_greedy_is_deterministic(engine):
    """The same request twice gives the same tokens: greedy, and nothing carried over from the last request."""
    ids = engine.encode(LONG[0])
    assert engine.generate(ids, N, lambda t: None).ids == engine.generate(ids, N, lambda t: None).ids


def test_latency_scenario_accepts_the_engine(engine):
    from llmbench.job.scenarios.latency import check_counts, measure

    ids = engine.encode(SHORT[0])
    for n in (N, 1):
        m = measure(engine, ids, n)
        assert m.error == "", m.error  # measure records an engine's exception instead of raising it
        assert check_counts(m) == "", check_counts(m)
        assert m.output_tokens == m.streamed_tokens == n and len(m.itl_s) == n - 1
        assert 0 < m.ttft_s <= m.latency_s and m.peak_memory_bytes > 0 and m.output_text
    assert engine.loaded.weight_bytes > 0 and engine.loaded.engine_version


def _parameters(cfg: dict) -> int:
    """Parameter count of a Llama-shaped HF config (embedding once when tied; q, k, v, o, gate, up, down and
    two norms per layer; the final norm): 134,515,008 for SmolLM2-135M."""
    hidden, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    head_dim = cfg.get("head_dim") or hidden // heads
    kv = cfg.get("num_key_value_heads", heads) * head_dim
    per_layer = 2 * hidden * heads * head_dim + 2 * hidden * kv + 3 * hidden * cfg["intermediate_size"] + 2 * hidden
    return cfg["vocab_size"] * hidden * (1 if cfg["tie_word_embeddings"] else 2) + layers * per_layer + hidden


def test_weight_bytes_are_parameters_times_bytes_per_parameter_as_run(entry, engine, model_dir):
    """The engine's own weight-bytes figure (never the artifact folder's size) agrees within 10% with the model
    config's parameter count x bytes per parameter as run; the embedding, tying, KV cache and thread facts the
    roofline needs are read back too."""
    cfg = json.loads((model_dir / "config.json").read_text())
    loaded = engine.loaded
    if cfg.get("model_type") != "llama":
        pytest.skip("_parameters counts Llama-shaped configs")
    assert entry.bytes_per_param and entry.kv_element_bytes, "give the entry its bytes per parameter and KV element"
    expected = _parameters(cfg) * entry.bytes_per_param
    assert abs(loaded.weight_bytes / expected - 1) <= 0.10, (loaded.weight_bytes, expected, loaded.weight_bytes_method)
    print(f"weight bytes [{entry.id}]: {loaded.weight_bytes} vs params x bytes {expected:.0f} "
          f"({loaded.weight_bytes / expected:.4f}); ran as: {loaded.ran_as}")
    assert loaded.tied_embeddings is cfg["tie_word_embeddings"] and loaded.weight_bytes_method and loaded.ran_as
    assert loaded.embedding_row_bytes * cfg["vocab_size"] == pytest.approx(loaded.input_embedding_bytes, rel=0.01)
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    kv = cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * head_dim * entry.kv_element_bytes
    assert loaded.kv_bytes_per_token == kv, (loaded.kv_bytes_per_token, kv)
    assert loaded.threads == 2  # every entry asks for 2 CPU threads; the figure is read back from the engine


NOT_HF = [e for e in ENTRIES if e.engine != "hf"]  # hf's encode is the reference tokenizer itself


@pytest.mark.parametrize("entry", NOT_HF, ids=_ids(NOT_HF), indirect=True)
def test_input_ids_are_the_model_tokenizers(engine, hf_tokens):
    for p in prompts.load(REPO / "config/prompts/latency-9-prompts.jsonl"):
        assert engine.encode(p["prompt"]) == hf_tokens.encode(p["prompt"])
    text = "Plain text, no template: the tokenizer is the same one."
    assert engine.tokenize_plain(text) == hf_tokens.tokenize_plain(text)


SCORED = [e for e in ENTRIES if _has_score(e)]


@pytest.mark.parametrize("entry", SCORED, ids=_ids(SCORED), indirect=True)
def test_teacher_forced_scores(engine, model_dir):
    _, vocab = _model_facts(model_dir)
    ids = engine.encode(LONG[0])
    out = engine.generate(ids, N, lambda t: None).ids
    seq = ids + out
    logprobs, argmax = engine.score(seq)
    assert len(logprobs) == len(argmax) == len(seq) - 1
    assert all(math.isfinite(x) and x <= 1e-6 for x in logprobs)
    assert all(type(a) is int and 0 <= a < vocab for a in argmax)
    # teacher forcing on the engine's own greedy output mostly predicts that output, position for position:
    # better than the same comparison shifted by one (what an off-by-one in score would give). Batched vs
    # one-by-one evaluation and int8 noise flip near-ties: CTranslate2 int8 agreed 0.6875 with its MKL int8
    # GEMM (its default on Intel CPUs; CT2_USE_MKL=1 on an AMD EPYC, 2026-12-02), 0.9375 with oneDNN (its
    # default elsewhere); shifted by one, 0.0 with either.
    agree = sum(a == t for a, t in zip(argmax[len(ids) - 1:], out)) / len(out)
    shifted = sum(a == t for a, t in zip(argmax[len(ids) - 2:], out)) / len(out)
    print(f"teacher-forced agreement [{engine.name}]: {agree:.4f}, shifted by one: {shifted:.4f}")
    assert agree >= 0.5 and agree > shifted, (agree, shifted)
    assert engine.score(seq[:1]) == ([], [])


FP32_ENTRIES = [e for e in ENTRIES if e.fp32]


@pytest.mark.parametrize("entry", FP32_ENTRIES, ids=_ids(FP32_ENTRIES), indirect=True)
def test_fp32_reproduces_the_reference_greedy(entry, load, reference, model_dir):
    """fp32 weights computed in fp32: token for token what HF generate gives, and (with ``score``) the same
    teacher-forced log-probs and argmax as HF's forward pass. Every engine masks the end tokens, so all 24
    tokens are compared (an emitted end token would cut the comparison short, and fails the assertion below)."""
    torch = pytest.importorskip("torch")
    eos, _ = _model_facts(model_dir)
    for options in entry.fp32.options:
        eng = load(entry.fp32.artifact, options)
        runtime = eng.loaded.runtime
        assert {k: runtime.get(k) for k in entry.fp32.runtime} == entry.fp32.runtime
        compared = []
        for prompt in LONG + SHORT[2:]:
            ids = reference.encode(prompt)
            want = reference.generate(ids, 24, lambda t: None).ids
            got = eng.generate(ids, 24, lambda t: None).ids
            compared.append(next((i for i, t in enumerate(got) if t in eos), len(got)))
            assert got[:compared[-1]] == want[:compared[-1]], (options, prompt, eng.decode(got), reference.decode(want))
        assert min(compared) == 24, compared  # no end token emitted: every answer compared in full
        if _has_score(entry):
            seq = ids + got
            logprobs, argmax = eng.score(seq)
            with torch.inference_mode():
                ref = torch.log_softmax(reference.model(torch.tensor([seq])).logits[0, :-1].float(), -1)
            ref_actual = ref[torch.arange(len(seq) - 1), torch.tensor(seq[1:])]
            if entry.fp32.logprob_atol is not None:
                gap = (torch.tensor(logprobs) - ref_actual).abs().max().item()
                assert gap <= entry.fp32.logprob_atol, (options, gap)
            assert argmax == ref.argmax(-1).tolist(), options


# ------------------------------------------------------------------------------- the same, in each engine's env

def _pytest_for(python: Path, dest: Path) -> Path:
    """A directory of links to the driver's pytest and the modules it imports, minus those the env has: the
    env files pin no pytest, and the env's own packages must stay the ones it runs with."""
    from importlib import metadata

    from packaging.requirements import Requirement

    tops, seen, todo = {}, set(), ["pytest"]
    while todo:
        dist = metadata.distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        todo += [r.name for r in map(Requirement, dist.requires or []) if not r.marker or r.marker.evaluate()]
        for f in dist.files or []:
            top = Path(f).parts[0]
            if top not in ("..", "__pycache__") and not top.endswith(".dist-info"):
                tops[top.removesuffix(".py")] = Path(dist.locate_file(top))
    code = "import importlib.util as u, sys; print(' '.join(n for n in sys.argv[1:] if u.find_spec(n) is None))"
    missing = subprocess.run([str(python), "-c", code, *tops], capture_output=True, text=True,
                             check=True).stdout.split()
    dest.mkdir(parents=True, exist_ok=True)
    for top in missing:
        (dest / tops[top].name).symlink_to(tops[top])
    return dest


def _outcomes(junit: Path) -> dict[str, str]:
    """Test name -> passed, skipped, failed or error, from pytest's JUnit XML."""
    out = {}
    for case in ET.parse(junit).iter("testcase"):
        tags = {child.tag for child in case} & {"skipped", "failure", "error"}
        out[case.get("name")] = {"skipped": "skipped", "failure": "failed", "error": "error"}.get(
            next(iter(tags), ""), "passed")
    return out


@pytest.mark.parametrize("name", _ids(ENTRIES))
def test_contract_in_env(name, engine_envs, embedded_model_dir, tmp_path):
    """This file's tests for one engine, run by the engine's env's python with the checkout's code."""
    e = next(e for e in ENTRIES if e.id == name)
    prefix = engine_envs(e.env)
    python = prefix / "bin/python"
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "LLMBENCH_TEST_MODEL_DIR": str(embedded_model_dir), "VIRTUAL_ENV": str(prefix),
           "PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), str(_pytest_for(python, tmp_path / "pytest"))])}
    cmd = [str(python), "-m", "pytest", str(Path(__file__)), "-k", f"[{name}] and not in_env", "-p", "no:cacheprovider",
           f"--basetemp={tmp_path / 'inner'}", f"--junitxml={junit}", "-q", "-rfEs"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    tail = f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, tail
    outcomes = _outcomes(junit)
    assert outcomes and all(n.endswith(f"[{name}]") for n in outcomes), (outcomes, tail)
    assert set(outcomes.values()) == {"passed"}, (outcomes, tail)
