"""The exact-token-count check can fail: CTranslate2's adapter returns the ids of the generator's own result,
obtained independently of on_token, so an output that differs from what was streamed is caught by the latency
scenario's check_counts; llama.cpp keeps no record of its samples apart from the tokens the adapter feeds back,
so its adapter's independent figure is the COUNT (the positions llama.cpp's KV cache holds), and a token that
was streamed but never decoded into the cache is caught as a short count. Quick: stand-ins shaped like
CTranslate2's Generator and llama-cpp-python's Llama (NOT those libraries); the real engines are checked by
test_engine_contract.py in their envs (there, every request's count comes from llama.cpp's KV cache)."""

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
    """llama_cpp.Llama's state: eval writes the fed tokens into input_ids; ``lost`` decoded tokens never reach
    the KV cache (what a decode that silently failed would leave)."""

    def __init__(self, lost: int = 0):
        self.input_ids, self.n_tokens, self._ctx, self.lost = [0] * 64, 0, SimpleNamespace(ctx="ctx"), lost

    def n_ctx(self):
        return 64

    def reset(self):
        self.n_tokens = 0

    def eval(self, tokens):
        for t in tokens:
            self.input_ids[self.n_tokens] = t
            self.n_tokens += 1


def _llama_cpp_api(llm: FakeLlama):
    """llama_get_memory / llama_memory_seq_pos_max over the fake's cache: the highest position it holds."""
    return SimpleNamespace(llama_get_memory=lambda ctx: ctx,
                           llama_memory_seq_pos_max=lambda mem, seq: llm.n_tokens - llm.lost - 1)


class FakeSampler:
    def __init__(self):
        self.stream = iter(STREAMED)

    def sample(self, ctx, idx):
        return next(self.stream)


def _llamacpp(lost: int = 0):
    eng = engines.create("llamacpp")
    eng.llm, eng._sampler = FakeLlama(lost), FakeSampler()
    eng.llama_cpp = _llama_cpp_api(eng.llm)
    eng.tokenizer = FakeTokenizer()
    return eng


def test_ct2_returns_ctranslate2s_result_not_the_stream():
    eng = _ct2()
    seen = []
    gen = eng.generate([1, 2, 3], 4, seen.append)
    assert isinstance(gen, Generation) and seen == STREAMED and gen.ids == OWN


def test_llamacpp_counts_what_its_kv_cache_holds():
    eng = _llamacpp()
    seen = []
    gen = eng.generate([1, 2, 3], 4, seen.append)
    assert seen == STREAMED and gen.ids == STREAMED and gen.engine_metrics["kv_positions"] == 3 + 4
    short = _llamacpp(lost=1).generate([1, 2, 3], 4, [].append)
    assert short.ids == STREAMED[:3] and short.engine_metrics["kv_positions"] == 3 + 3


def test_the_scenario_catches_an_engine_whose_output_differs_from_its_stream():
    problem = check_counts(measure(_ct2(), [1, 2, 3], 4))
    assert problem == "streamed token ids differ from the returned ones", problem
    problem = check_counts(measure(_llamacpp(lost=1), [1, 2, 3], 4))
    assert problem == "engine returned 3 new tokens, 4 were requested", problem
    assert check_counts(measure(_llamacpp(), [1, 2, 3], 4)) == ""


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
