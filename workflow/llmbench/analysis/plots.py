"""The report's plots, drawn with matplotlib from the merged tables (never from anything else).

Each plot is written as PNG and SVG under ``results/plots/`` (:data:`LATENCY_PLOTS`, :data:`SERVING_PLOTS`).
A plot whose figures are missing on every line (e.g. cost without a configured price, energy on a CPU without
RAPL) is still drawn, as a panel that says why it is empty: an empty report entry never looks like a zero.
Only successful measured requests are drawn; a line with failed requests is marked INVALID (its figures cover
the others only) and one measured under interference NOISY; unverified lines are named under the axes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

LATENCY_PLOTS = ("decode-vs-limit", "ttft-tpot", "quality-vs-speed", "memory-size", "cost", "energy")
SERVING_PLOTS = ("serving-throughput", "serving-latency")
FORMATS = ("png", "svg")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "svg.hashsalt": "llmbench"})   # the same input draws the same SVG
    return plt


def _label(line) -> str:
    """A line's name, marked INVALID (some measured requests failed: its figures cover the rest only) or NOISY
    (others used the machine while it was measured) as its table status says."""
    marks = [m for m, on in (("INVALID", not line.get("valid", True)), ("NOISY", line.get("noisy", False))) if on]
    return f"{line['artifact']}\n{line['engine']} / {line['variant']}" + (f" [{', '.join(marks)}]" if marks else "")


def _measured(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["status"] != "unverified"].reset_index(drop=True)


def _xscale(ax, values, label: str) -> None:
    """Log scale where the values span more than 20x (labels as plain numbers), else linear from zero."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0], dtype=float)
    if len(v) and v.max() / v.min() > 20:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        label += " (log scale)"
    else:
        ax.set_xlim(left=0)
    ax.set_xlabel(label)


def _footer(fig, summary: pd.DataFrame, extra: str = "") -> None:
    """Under the axes: the device(s), the unverified lines (not drawn), and ``extra``."""
    devices = ", ".join(sorted({str(d) for d in summary["device_name"].dropna()})) or "?"
    text = f"device: {devices}"
    skipped = summary[summary["status"] == "unverified"]
    if len(skipped):
        text += "; not drawn (unverified): " + ", ".join(f"{r.engine} / {r.variant} on {r.artifact}"
                                                          for r in skipped.itertuples())
    if extra:
        text += "; " + extra
    lines = textwrap.wrap(text, 150)
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, min(0.4, (0.25 + 0.14 * len(lines)) / height), 1, 1))
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", ha="left", color="0.3")


def _empty(plt, title: str, why: str, summary: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(why, 90)), ha="center", va="center", fontsize=9)
    _footer(fig, summary)
    return fig


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    out = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        tmp.replace(path)
        out.append(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def decode_vs_limit(plt, summary: pd.DataFrame):
    """Decode tok/s per line (1 / median TPOT, with the TPOT interval) beside the memory limit at batch 1."""
    lines = _measured(summary)
    if lines.empty:
        return _empty(plt, "Decode tokens/s and the bandwidth limit", "no measured line", summary)
    y = np.arange(len(lines))
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(lines) + 2.0))
    decode = lines["decode_tokens_per_s"].to_numpy(float)
    low = 1 / lines["tpot_p50_ci_high_s"].to_numpy(float)
    high = 1 / lines["tpot_p50_ci_low_s"].to_numpy(float)
    err = np.vstack([np.nan_to_num(decode - low), np.nan_to_num(high - decode)])
    ax.barh(y, decode, xerr=err, color="tab:blue", alpha=0.8, label="measured decode tok/s (95% CI of median TPOT)")
    ax.scatter(lines["roofline_tokens_per_s"], y, marker="|", s=300, color="tab:red", zorder=3,
               label="limit: measured read bandwidth / decode bytes")
    if lines["mbu_datasheet"].notna().any():
        sheet = lines["decode_tokens_per_s"] / lines["mbu_datasheet"]   # datasheet bandwidth × devices / decode bytes
        ax.scatter(sheet, y, marker="|", s=300, color="tab:orange", zorder=3, label="limit at datasheet bandwidth")
    for i, r in lines.iterrows():
        share = "MBU flagged" if r["mbu_flag"] else ("" if pd.isna(r["mbu"]) else f"MBU {r['mbu']:.0%}")
        right = np.nanmax([r["decode_tokens_per_s"], high[i]])
        ax.annotate(f"  {r['decode_tokens_per_s']:.1f} tok/s, {share}", (right, i), va="center", fontsize=7)
    ax.set_yticks(y, [_label(r) for _, r in lines.iterrows()], fontsize=7)
    ax.invert_yaxis()
    _xscale(ax, np.concatenate([decode, lines["roofline_tokens_per_s"].to_numpy(float)]), "tokens/s at batch 1")
    ax.set_title("Decode speed and the memory-bandwidth limit")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    _footer(fig, summary, "limit = bytes one decode step reads (weights as run + KV cache) at the bandwidth measured in the job")
    return fig


def ttft_tpot(plt, summary: pd.DataFrame, requests: pd.DataFrame):
    """TTFT and TPOT distributions per line from the raw requests (successful, measured)."""
    lines = _measured(summary)
    ok = requests[~requests["warmup"] & requests["success"]]
    if lines.empty or ok.empty:
        return _empty(plt, "TTFT and TPOT per request", "no successful measured request", summary)
    keys = ["model", "artifact", "engine", "variant", "scenario"]
    groups = [ok.merge(r[keys].to_frame().T, on=keys) for _, r in lines.iterrows()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(lines) + 1.8), sharey=True)
    for ax, col, title in ((axes[0], "ttft_s", "TTFT (ms)"), (axes[1], "tpot_s", "TPOT (ms)")):
        data = [g[col].dropna().to_numpy(float) * 1e3 for g in groups]
        ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)
        for i, d in enumerate(data, start=1):
            jitter = np.random.default_rng(i).uniform(-0.18, 0.18, len(d))
            ax.scatter(d, i + jitter, s=6, alpha=0.5, color="tab:blue")
        _xscale(ax, np.concatenate(data) if data else [], title)
    axes[0].set_yticks(range(1, len(lines) + 1), [f"{_label(r)} (n={len(g)})" for (_, r), g in
                                                  zip(lines.iterrows(), groups)], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle("Time to first token and time per output token, every successful measured request")
    _footer(fig, summary, "box: quartiles, whiskers 1.5 IQR; dots: requests")
    return fig


def pareto(speed: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats on both speed (higher) and loss (lower)."""
    keep = np.ones(len(speed), dtype=bool)
    for i in range(len(speed)):
        others = (speed >= speed[i]) & (loss <= loss[i]) & ((speed > speed[i]) | (loss < loss[i]))
        keep[i] = not others.any()
    return keep


def quality_vs_speed(plt, summary: pd.DataFrame):
    """Quality cost against decode speed; KL mean where every scored line has it, else the PPL ratio."""
    lines = _measured(summary)
    lines = lines[lines["decode_tokens_per_s"].notna()]
    use_kl = lines["kl_mean"].notna().sum() >= 2
    col, name = ("kl_mean", "KL(reference ‖ line), mean, nats") if use_kl else ("ppl_ratio", "PPL ratio to the reference")
    scored = lines[lines[col].notna()]
    if scored.empty:
        return _empty(plt, "Quality vs speed", f"no line has a {name} figure (quality not configured, or only "
                      "the reference was scored)", summary)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    speed, loss = scored["decode_tokens_per_s"].to_numpy(float), scored[col].to_numpy(float)
    front = pareto(speed, loss)
    ax.scatter(speed[~front], loss[~front], color="tab:gray", label="dominated")
    ax.scatter(speed[front], loss[front], color="tab:green", s=40, label="Pareto front (faster or closer)")
    order = np.argsort(speed[front])
    ax.plot(speed[front][order], loss[front][order], color="tab:green", alpha=0.5)
    for (_, r), x, yv in zip(scored.iterrows(), speed, loss):
        mark = " †" if r["quality_borrowed"] else ""
        ax.annotate(_label(r).replace("\n", " (") + ")" + mark, (x, yv), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel("decode tokens/s (1 / median TPOT)")
    ax.set_ylabel(name + " (lower is closer)")
    ax.set_title("Quality cost vs decode speed")
    ax.legend(fontsize=7)
    missing = lines[lines[col].isna()]
    extra = (f"left out of the Pareto front (no {col} figure): "
             + ", ".join(f"{r.engine} / {r.variant} on {r.artifact}" for r in missing.itertuples())
             if len(missing) else "")
    _footer(fig, summary, ("† figures measured by another variant (quality_by); " + extra).strip("; "))
    return fig


def memory_size(plt, summary: pd.DataFrame):
    """Per line: artifact files on disk, weight bytes as run, peak memory of the requests."""
    lines = _measured(summary)
    if lines.empty:
        return _empty(plt, "Memory and size", "no measured line", summary)
    y = np.arange(len(lines))
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(lines) + 1.6))
    h = 0.27
    for k, (col, name) in enumerate((("artifact_bytes", "on disk"), ("weight_bytes", "weights as run"),
                                     ("peak_memory_bytes", "peak memory (see memory_kind)"))):
        ax.barh(y + (k - 1) * h, lines[col].astype(float) / 2**20, height=h, label=name)
    ax.set_yticks(y, [_label(r) for _, r in lines.iterrows()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("MiB")
    ax.set_title("Size on disk, weights as run, and peak memory per line")
    ax.legend(fontsize=7)
    kinds = ", ".join(sorted(set(lines["memory_kind"].dropna())))
    _footer(fig, summary, f"peak memory kinds: {kinds}")
    return fig


def _bars(plt, summary, col: str, title: str, xlabel: str, why_empty: str, note: str = ""):
    lines = _measured(summary)
    have = lines[lines[col].notna()]
    if have.empty:
        return _empty(plt, title, why_empty, summary)
    y = np.arange(len(have))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(have) + 1.6))
    ax.barh(y, have[col], color="tab:purple", alpha=0.8)
    for i, v in enumerate(have[col]):
        ax.annotate(f" {v:.3g}", (v, i), va="center", fontsize=7)
    ax.set_yticks(y, [_label(r) for _, r in have.iterrows()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _footer(fig, summary, note)
    return fig


def cost(plt, summary: pd.DataFrame):
    lines = _measured(summary)
    sources = "; ".join(sorted({f"{r.device_name}: ${r.usd_per_hour:g}/h ({r.price_source}, {r.price_date})"
                                for r in lines.itertuples() if pd.notna(r.usd_per_hour)}))
    devices = ", ".join(sorted({str(d) for d in lines["device_name"].dropna()})) or "?"
    return _bars(plt, summary, "usd_per_1m_output_tokens", "Cost per 1M output tokens (batch 1)",
                 "US$ per 1M output tokens at the line's end-to-end rate",
                 f"no price configured for {devices}: add it under `pricing` in the config (device, usd_per_hour, "
                 "source, date)", "price " + sources)


def energy(plt, summary: pd.DataFrame):
    lines = _measured(summary)
    notes = sorted({n for n in lines["energy_note"].dropna() if n})
    return _bars(plt, summary, "energy_j_per_output_token", "Energy per output token (above idle)",
                 "J per output token (window energy - idle power × window) / output tokens",
                 "no energy figure: " + ("; ".join(notes) or "no counter read"),
                 "; ".join(sorted({m for m in lines["energy_method"].dropna() if m})))


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def serving_throughput(plt, points: pd.DataFrame):
    """Output tokens/s against concurrency, one line per engine × artifact (points with a concurrency bound)."""
    pts = points[points["concurrency"].notna() & (points["status"] != "unverified")]
    if pts.empty:
        return _empty(plt, "Serving throughput vs concurrency", "no serving point with a concurrency bound", points)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, g in pts.groupby(["artifact", "engine", "variant"]):
        g = g.sort_values("concurrency")
        ax.plot(g["concurrency"], g["output_throughput"], "o-", label=" / ".join(key))
    ax.set_xlabel("concurrency bound")
    _integer_ticks(ax)
    ax.set_ylabel("output tokens/s (successful requests of the point)")
    ax.set_title("Serving: throughput vs concurrency")
    ax.legend(fontsize=7)
    _footer(fig, points)
    return fig


def serving_latency(plt, points: pd.DataFrame):
    """TTFT and TPOT p50 (p99 dashed) against the request rate (or concurrency when the rate is unbounded)."""
    points = points[points["status"] != "unverified"]
    if points.empty:
        return _empty(plt, "Serving latency", "no measured serving point", points)
    rates = pd.to_numeric(points["request_rate"], errors="coerce").replace(np.inf, np.nan)
    x = "request_rate" if rates.nunique() > 1 else "concurrency"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in ((axes[0], "ttft"), (axes[1], "tpot")):
        for key, g in points.groupby(["artifact", "engine", "variant"]):
            g = g.sort_values(x)
            line, = ax.plot(g[x], g[f"{metric}_p50_ms"], "o-", label=" / ".join(key))
            ax.plot(g[x], g[f"{metric}_p99_ms"], "--", color=line.get_color(), alpha=0.6)
        ax.set_xlabel("request rate (req/s)" if x == "request_rate" else "concurrency bound")
        if x == "concurrency":
            _integer_ticks(ax)
        ax.set_ylabel(f"{metric.upper()} ms: p50 solid, p99 dashed")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Serving: latency vs {x.replace('_', ' ')}")
    _footer(fig, points)
    return fig


def draw_latency(tables_dir: Path, out_dir: Path) -> list[Path]:
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = pd.read_parquet(tables_dir / "latency.parquet")
    requests = pd.read_parquet(tables_dir / "requests.parquet",
                               columns=["model", "artifact", "engine", "variant", "scenario", "warmup", "success",
                                        "ttft_s", "tpot_s"])
    figures = {"decode-vs-limit": decode_vs_limit(plt, summary), "ttft-tpot": ttft_tpot(plt, summary, requests),
               "quality-vs-speed": quality_vs_speed(plt, summary), "memory-size": memory_size(plt, summary),
               "cost": cost(plt, summary), "energy": energy(plt, summary)}
    return [p for name in LATENCY_PLOTS for p in _save(figures[name], out_dir, name)]


def draw_serving(tables_dir: Path, out_dir: Path) -> list[Path]:
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    points = pd.read_parquet(tables_dir / "serving.parquet")
    if "device_name" not in points:
        points["device_name"] = None
    if "status" not in points:
        points["status"] = "verified"
    figures = {"serving-throughput": serving_throughput(plt, points), "serving-latency": serving_latency(plt, points)}
    return [p for name in SERVING_PLOTS for p in _save(figures[name], out_dir, name)]
