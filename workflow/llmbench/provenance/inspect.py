"""``llmbench inspect PATH``: what a model/artifact directory is, how it was made, and whether it is intact."""

from __future__ import annotations

import json
from pathlib import Path

from llmbench.provenance import manifest


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _load(load: dict | None) -> str:
    """The machine's load when the build ended (a build's time compares with another's at a similar load)."""
    if not load:
        return ""
    return f", load {load['load_1min']} (1 min) / {load['load_5min']} (5 min) on {load['cpus']} CPUs at the end"


def describe(path: Path, verify: bool = True) -> str:
    m = manifest.read(path)
    lines = [f"{path}", f"  kind:          {m['kind']}"]
    if m["kind"] == "model":
        lines.append(f"  source:        {m.get('source')}")
    else:
        lines += [f"  method:        {m.get('method')}  params {json.dumps(m.get('params', {}))}",
                  f"  made by:       {m.get('library')}",
                  f"  from model:    {m.get('input_model_dir')} (content {m.get('input_model_hash', '')[:16]}…)",
                  f"  build:         {m.get('build_time_s')} s, peak RSS {_size(m.get('peak_rss_bytes') or 0)}"
                  + _load(m.get("build_load"))]
    if m.get("status") == "unverified":
        lines.append(f"  UNVERIFIED:    {m.get('unverified_reason')}")
    if m.get("synthetic"):
        lines.append(f"  SYNTHETIC:     random weights {m['synthetic']}: speed only, no quality figure")
    lines.append(f"  versions:      {json.dumps(m.get('library_versions', {}))}")
    lines.append(f"  created:       {m.get('created')}   content hash {m['content_hash'][:16]}…")
    lines.append(f"  files ({len(m['files'])}, {_size(m['total_bytes'])}):")
    lines += [f"    {_size(f['size']):>10}  {f['sha256'][:12]}  {name}" for name, f in m["files"].items()]
    lines += _layers(path)
    if verify:
        found = manifest.problems(path)
        lines.append("  integrity:     OK, every file matches its sha256" if not found else
                     "  integrity:     STALE\n" + "\n".join(f"    - {f}" for f in found))
    return "\n".join(lines)


def _layers(path: Path) -> list[str]:
    """Tensor dtypes in safetensors files, grouped, so a reader sees what is quantized and how."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return []
    from collections import Counter

    counts: Counter = Counter()
    for f in files:
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            suffix = name.rsplit(".", 1)[-1]
            counts[(suffix, meta["dtype"])] += 1
    out = ["  tensors (by name suffix and dtype):"]
    out += [f"    {n:5d} × {suffix} [{dtype}]" for (suffix, dtype), n in sorted(counts.items())]
    cfg = path / "config.json"
    if cfg.exists():
        q = json.loads(cfg.read_text()).get("quantization_config")
        if q:
            out.append(f"  quantization_config: {json.dumps(q)[:400]}")
    return out
