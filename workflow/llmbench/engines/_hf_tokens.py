"""The tokenizer half of the engine interface, shared by every adapter that uses an HF tokenizer.

Adapters that encode with the artifact's HF tokenizer (so input ids are identical across engines) set
``self.tokenizer`` in ``load`` and inherit these methods. ``fold_vocab``, set by adapters that can load
synthetic weights, folds ids into the model's vocabulary: the identity, except for a synthetic shape whose
vocabulary is smaller than the borrowed tokenizer's.
"""

from __future__ import annotations


class HFTokenizerMixin:
    tokenizer = None
    fold_vocab: int | None = None

    def _fold(self, ids) -> list[int]:
        ids = [int(i) for i in ids]
        return [i % self.fold_vocab for i in ids] if self.fold_vocab else ids

    def encode(self, prompt: str) -> list[int]:
        """Prompt -> input ids, with the chat template when the tokenizer has one."""
        tok = self.tokenizer
        if tok.chat_template:
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          tokenize=True, return_dict=False)
        else:
            ids = tok(prompt)["input_ids"]
        return self._fold(ids)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def tokenize_plain(self, text: str) -> list[int]:
        """Text -> ids without chat template or special tokens (re-tokenized counts, perplexity text)."""
        return self._fold(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize_plain(text))
