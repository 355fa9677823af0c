"""The exact-token-count check can fail: each adapter returns its engine's own output ids, obtained
independently of on_token, so an engine whose output differs from what it streamed is caught by the latency
scenario's check_counts. Quick: stand-ins shaped like CTranslate2's Generator and llama-cpp-python's Llama
(NOT those libraries); the real engines are checked by test_engine_contract.py in their envs."""

from __future__ import annotations

from types import SimpleNamespace

from llmbench import engines
from llmbench.core.engine import Generation
from llmbench.job.scenarios.latency import check_counts, measure

STREAMED = [5, 6, 7, 8]
OWN = [5, 6, 9, 8]  # what the engine itself says it produced: differs at position 2


class FakeTokenizer:
    def decode(self, ids, **kw):
        return " ".join(map(str, ids))

    def __call__(self, text, **kw):
        return {"input_ids": text.split()}


class FakeGenerator:
    """ctranslate2.Generator's two streaming paths: the step callback sees STREAMED, the final result is OWN."""

    def generate_batch(self, prompts, *, callback, include_prompt_in_result, **kw):
        assert include_prompt_in_result is False and kw["min_length"] == kw["max_length"]
        for t in STREAMED[: kw["max_length"]]:
            if callback(SimpleNamespace(token_id=t)):
                break
        return [SimpleNamespace(sequences_ids=[OWN[: kw["max_length"]]])]

    def generate_tokens(self, prompt, **kw):  # the old path: a stream only
        for t in STREAMED[: kw["max_length"]]:
            yield SimpleNamespace(token_id=t)


def _ct2():
    eng = engines.create("ct2")
    eng.generator, eng.id_to_token, eng.end_token = FakeGenerator(), [str(i) for i in range(16)], [2]
    eng.tokenizer = FakeTokenizer()
    return eng


class FakeLlama:
    """llama_cpp.Llama's state: eval writes the decoded tokens into input_ids; this one's context holds
    token 9 where 7 was streamed (OWN)."""

    def __init__(self):
        self.input_ids, self.n_tokens, self._ctx = [0] * 64, 0, object()

    def n_ctx(self):
        return 64

    def reset(self):
        self.n_tokens = 0

    def eval(self, tokens):
        for t in tokens:
            self.input_ids[self.n_tokens] = 9 if t == 7 else t
            self.n_tokens += 1

    def generate(self, tokens, **kw):  # the old path: yields the sampled tokens
        yield from STREAMED + [1] * 8


class FakeSampler:
    def __init__(self):
        self.stream = iter(STREAMED)

    def sample(self, ctx, idx):
        return next(self.stream)


def _llamacpp():
    eng = engines.create("llamacpp")
    eng.llm, eng._sampler = FakeLlama(), FakeSampler()
    eng.tokenizer = FakeTokenizer()
    return eng


def test_ct2_returns_ctranslate2s_result_not_the_stream():
    eng = _ct2()
    seen = []
    gen = eng.generate([1, 2, 3], 4, seen.append)
    assert isinstance(gen, Generation) and seen == STREAMED and gen.ids == OWN


def test_llamacpp_returns_the_contexts_tokens_not_the_stream():
    eng = _llamacpp()
    seen = []
    gen = eng.generate([1, 2, 3], 4, seen.append)
    assert seen == STREAMED and gen.ids == OWN


def test_the_scenario_catches_an_engine_whose_output_differs_from_its_stream():
    for eng in (_ct2(), _llamacpp()):
        problem = check_counts(measure(eng, [1, 2, 3], 4))
        assert problem == "streamed token ids differ from the returned ones", (type(eng).__name__, problem)


def test_ct2_an_exception_in_on_token_stops_decoding_and_is_raised():
    eng = _ct2()

    def boom(tok):
        raise KeyError("on_token failed")

    try:
        eng.generate([1], 4, boom)
    except KeyError as e:
        assert "on_token failed" in str(e)
    else:
        raise AssertionError("the callback's exception was swallowed")
