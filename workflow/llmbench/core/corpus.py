"""A small, fixed, license-clean text corpus: help topics from CPython, frozen into files of this package.

Source: ``pydoc_data.topics`` (CPython's ``Lib/pydoc_data/topics.py``, the text behind ``help("assert")``;
Python Software Foundation License). CPython regenerates that file for its releases, so reading it at run
time gave other text under another Python (the vLLM env runs 3.12, the others 3.11). The split below was
therefore run once (:func:`freeze`, under the Python recorded in ``data/corpus.json``) and its result ships in
``data/``: ``heldout.txt`` (the held-out text), ``calibration.jsonl`` (one calibration document per line, a
JSON string) and ``corpus.json`` (source, Python version, split rule, topic names, sha256 of both texts).
Every env reads those files, so the text is identical everywhere; reading them checks the recorded hashes.

Split rule (what :func:`split_pydoc_topics` did): topics overlap (many repeat sections of others), so each
paragraph (text between blank lines) is kept only at its first occurrence in topic-name order; topics left
with no new paragraph are dropped. Then every 5th remaining topic (index 0, 5, 10, ...) is held out for
perplexity and the others are calibration data: the two parts share no topic and no paragraph.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from functools import cache
from pathlib import Path

HELDOUT_EVERY = 5
SOURCE = "CPython Lib/pydoc_data/topics.py (pydoc_data.topics), PSF License"
DATA = Path(__file__).with_name("data")


def split_pydoc_topics(topics: dict[str, str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(calibration documents, their topic names, held-out documents, their topic names) of a topics dict."""
    seen: set[str] = set()
    docs: list[tuple[str, str]] = []
    for name in sorted(topics):
        paras = [p.strip() for p in re.split(r"\n[ \t]*\n", topics[name].replace("\r\n", "\n"))]
        new = [p for p in paras if p and p not in seen]
        seen.update(new)
        if new:
            docs.append((name, "\n\n".join(new)))
    held = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY == 0]
    calib = [d for i, d in enumerate(docs) if i % HELDOUT_EVERY != 0]
    return [t for _, t in calib], [n for n, _ in calib], [t for _, t in held], [n for n, _ in held]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def freeze(out_dir: Path = DATA) -> dict:
    """Write data/ from this interpreter's pydoc_data (run once by a maintainer; the result is committed)."""
    from pydoc_data.topics import topics

    calib, calib_names, held, held_names = split_pydoc_topics(topics)
    out_dir.mkdir(parents=True, exist_ok=True)
    heldout = "\n\n".join(held)
    (out_dir / "heldout.txt").write_text(heldout, encoding="utf-8", newline="\n")
    (out_dir / "calibration.jsonl").write_text("".join(json.dumps(d) + "\n" for d in calib), encoding="utf-8")
    meta = {"source": SOURCE, "python": platform.python_version(),
            "split": (f"topics sorted by name, paragraphs deduplicated (first occurrence kept); topic index % "
                      f"{HELDOUT_EVERY} == 0 held out, the rest calibration"),
            "calibration_topics": calib_names, "heldout_topics": held_names,
            "calibration_sha256": _sha256("\n\n".join(calib)), "heldout_sha256": _sha256(heldout)}
    (out_dir / "corpus.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


@cache
def _frozen() -> tuple[tuple[str, ...], str, dict]:
    """(calibration documents, held-out text, corpus.json), hashes checked against corpus.json."""
    meta = json.loads((DATA / "corpus.json").read_text(encoding="utf-8"))
    held = (DATA / "heldout.txt").read_text(encoding="utf-8")
    calib = tuple(json.loads(line) for line in (DATA / "calibration.jsonl").read_text(encoding="utf-8").splitlines())
    for what, text in (("heldout", held), ("calibration", "\n\n".join(calib))):
        if _sha256(text) != meta[f"{what}_sha256"]:
            raise RuntimeError(f"{DATA}: the {what} text's sha256 {_sha256(text)} is not the one corpus.json "
                               f"records ({meta[what + '_sha256']}): the packaged corpus was changed")
    return calib, held, meta


def calibration_texts() -> list[str]:
    """The calibration documents, one per help topic, in a fixed order (topic name)."""
    return list(_frozen()[0])


def calibration_text() -> str:
    """All calibration documents as one string (documents separated by a blank line)."""
    return "\n\n".join(_frozen()[0])


def heldout_text() -> str:
    """The held-out documents as one string (documents separated by a blank line); none is in calibration."""
    return _frozen()[1]


def calibration_sha256() -> str:
    """sha256 of :func:`calibration_text` (UTF-8); the documents' order and separators are part of it."""
    return _sha256(calibration_text())


def heldout_sha256() -> str:
    """sha256 of :func:`heldout_text` (UTF-8)."""
    return _sha256(heldout_text())


def describe() -> dict:
    """What a manifest records about the corpus: source, the Python it was frozen from, split rule, sizes and
    hashes (of the packaged files, the same under every interpreter)."""
    calib, held, meta = _frozen()
    return {
        "source": SOURCE,
        "python": meta["python"],
        "frozen": "packaged files llmbench/core/data/{heldout.txt,calibration.jsonl,corpus.json}, made "
                  "once from that Python's pydoc_data and read the same by every env",
        "split": meta["split"],
        "hash": "sha256 of the UTF-8 text, documents joined by a blank line",
        "calibration_sha256": calibration_sha256(),
        "calibration_documents": len(calib),
        "calibration_chars": len(calibration_text()),
        "heldout_sha256": heldout_sha256(),
        "heldout_documents": len(meta["heldout_topics"]),
        "heldout_chars": len(held),
    }
