"""docs/PERFORMANCE.md's measured block, written from docs/data/perf/*.json by benchmarks/results.py.

Each file is written by one benchmark's `--json PATH` (the command is stored in it):

- `throughput-1t*.json`, `throughput-2t*.json`: benchmarks/throughput.py --threads N [--profile seqsum],
  one file per run; `seqsum` is the default precision (auto), the other precision is its own path
- `precision.json`: benchmarks/precision.py (learning in bf16 against fp32, intervals over seeds)
- `overhead.json`, `overhead-4.json`: benchmarks/study_overhead.py (16 and 4 trials)
- `heads-*.json`: benchmarks/heads_throughput.py (the structured heads beside the GRU control, per length)
- `gpu.json`: benchmarks/gpu.sh on a CUDA machine (absent: unmeasured)

The block sits between PERF_BEGIN and PERF_END; the rest of PERFORMANCE.md is prose and a log.
"""

from __future__ import annotations

import json
from pathlib import Path

PERF_BEGIN, PERF_END = "<!-- perf:begin -->", "<!-- perf:end -->"
TARGET_RATIO = 2.0  # seqsum / the plain loop, every round
TARGET_GEMM_SHARE = 0.60  # of the measured fp32 matmul rate, at 2 threads
TARGET_OVERHEAD = 0.05


def _load(folder: Path, name: str) -> dict | None:
    p = folder / name
    return json.loads(p.read_text()) if p.is_file() else None


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def throughput_lines(t: dict) -> list[str]:
    m = t["machine"]
    threads = f"{m['threads']} thread" + ("s" if m["threads"] != 1 else "")
    out = [
        f"`{t['command']}` ({m['cpus']} CPUs, {m['cpu']}; torch {m['torch']}, {threads}; load average "
        f"{m['load'][0]:.2f} at the end; {t['steps']} steps per path):",
        "",
        f"- training FLOPs per sequence: {t['flops_per_seq'] / 1e6:.1f} M; measured fp32 matmul rate "
        f"{t['gemm_fp32'] / 1e9:.1f} GFLOP/s" + (f", bf16 {t['gemm_bf16'] / 1e9:.1f} GFLOP/s "
        f"({t['gemm_bf16'] / t['gemm_fp32']:.2f}x)" if t.get("gemm_bf16") else ""),
        "",
        "| path | precision | seq/s (median) | range | share of the fp32 matmul rate | valid exact |",
        "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, p in t["paths"].items():
        out.append(f"| {name} | {p['precision']} | {p['seq_s']:.1f} | {p['min']:.1f}..{p['max']:.1f} | "
                   f"{p['share_of_fp32_gemm']:.1%} | {p['valid_exact']:.4f} |")  # fmt: skip
    out.append("")
    for pair, r in t["ratios"].items():
        top, name = pair.split("/")
        spread = f"min {r['min']:.2f}x, median {r['median']:.2f}x, max {r['max']:.2f}x"
        line = f"- {top} / {name}: {spread} over {len(r['rounds'])} rounds"
        if name == "reference":
            line += f"; target min >= {TARGET_RATIO}x: {_met(r['min'] >= TARGET_RATIO)}"
        out.append(line)
    for name, p in t["paths"].items():
        if not name.startswith("seqsum"):
            continue
        line = f"- {name} ({p['precision']}) reaches {p['share_of_fp32_gemm']:.1%} of the fp32 matmul rate"
        if p["precision"] == "bf16" and t.get("gemm_bf16"):
            share16 = p["share_of_fp32_gemm"] * t["gemm_fp32"] / t["gemm_bf16"]
            line += f" (its FLOPs done in bf16: {share16:.1%} of the bf16 matmul rate)"
        out.append(line + f"; goal >= {TARGET_GEMM_SHARE:.0%} at 2 threads")
    prof = t.get("profile")
    if prof:
        out += ["", f"Where the time goes (`--profile {prof['path']}`: torch.profiler, one chunk, self CPU time):", "",
                "| op | share | calls |", "| --- | --- | --- |"]  # fmt: skip
        out += [f"| `{o['op']}` | {o['share']:.1%} | {o['calls']} |" for o in prof["top_ops"]]
    return out + [""]


def precision_lines(p: dict) -> list[str]:
    out = [f"`{p['command']}` (seeds {', '.join(map(str, p['seeds']))}; {p['epochs']} epochs of "
           f"{p['train_size']:,} sequences):", "", "| task | precision | valid exact | test exact |",
           "| --- | --- | --- | --- |"]  # fmt: skip
    equal = []
    for task, t in p["tasks"].items():
        for prec, iv in t["intervals"].items():
            cells = [f"{m:.4f} [{lo:.4f}, {hi:.4f}]" for m, lo, hi in (iv["valid"], iv["test"])]
            out.append(f"| {task} | {prec} | {cells[0]} | {cells[1]} |")
        equal.append(t["overlap"]["test"] and t["overlap"]["valid"])
    out.append("")
    for task, t in p["tasks"].items():
        out.append(f"- {task}: intervals overlap (valid {t['overlap']['valid']}, test {t['overlap']['test']}); "
                   f"training time fp32 / bf16 {t['speedup']:.2f}x (median over seeds; wall time beside whatever else "
                   "ran, so speed is read from the throughput sections)")  # fmt: skip
    verdict = "overlap on every task: equality is not refuted" if all(equal) else "do not all overlap"
    return out + [f"- the intervals {verdict}", ""]


def overhead_lines(o: dict) -> list[str]:
    rows = [f"| {k} | {v:.1%} |" for k, v in o["shares"].items()]
    return [f"`{o['command']}` ({o['trials']} trials, {o['concurrent']} at a time, load average "
            f"{o['load'][0]:.2f} at the end):", "", "| part of slot time | share |", "| --- | --- |", *rows, "",
            f"- **overhead {o['overhead']:.2%}** of slot time outside `train()` (target <= {TARGET_OVERHEAD:.0%}: "
            f"{_met(o['overhead'] <= TARGET_OVERHEAD)}); once Ray is up "
            f"{o['overhead_once_ray_is_up']:.1%}", ""]  # fmt: skip


def heads_lines(h: dict) -> list[str]:
    """Per length, each family's training sequences/s (median over rounds) and its ratio to the control."""
    m, fams = h["machine"], h["families"]
    out = [f"`{h['command']}` ({m['cpus']} CPUs, {m['cpu']}; torch {m['torch']}, {m['threads']} thread"
           f"{'s' * (m['threads'] != 1)}; load average {m['load_before'][0]:.2f} before, {m['load_after'][0]:.2f} "
           f"after; {h['task']}, {h['precision']}; {h['steps']} steps of batch {h['batch_size']} per chunk, "
           f"{h['rounds']} rounds): training sequences per second, median over rounds (ratio to {fams[0]})", "",
           "| length | " + " | ".join(fams) + " |", "|" + " --- |" * (len(fams) + 1)]  # fmt: skip
    rows = {(r["family"], r["length"]): r for r in h["rows"]}
    lengths = sorted({r["length"] for r in h["rows"]})
    for L in lengths:
        cells = [f"{rows[f, L]['median']:.0f} ({rows[f, L]['ratio']:.2f}x)" for f in fams]
        out.append(f"| {L} | " + " | ".join(cells) + " |")
    out.append("")
    for f in fams[1:]:
        low = min(rows[f, L]["ratio"] for L in lengths)
        out.append(f"- {f}: at least as fast as {fams[0]} at every length 1..{lengths[-1]}: "
                   f"{_met(low >= 1.0)} (lowest ratio {low:.2f}x)")  # fmt: skip
    return out + [""]


def render_block(folder: Path) -> str:
    out = [PERF_BEGIN, "", "Generated by `.venv/bin/python benchmarks/results.py` from `docs/data/perf/`; each "
           "paragraph names the command that measured it.", ""]  # fmt: skip
    for n, title in ((1, "1 thread"), (2, "2 threads")):
        runs = sorted(folder.glob(f"throughput-{n}t*.json"))  # every committed run: rounds vary between runs
        out += [f"#### Throughput, {title}", ""]
        if len(runs) > 1:
            out += [f"{len(runs)} runs of the same command at different times, each shown (the spread between runs "
                    "is part of the measurement).", ""]  # fmt: skip
        for r in runs:
            out += throughput_lines(json.loads(r.read_text()))
        out += [] if runs else ["Not measured yet.", ""]
    p = _load(folder, "precision.json")
    out += ["#### Learning in bf16 against fp32", ""] + (precision_lines(p) if p else ["Not measured yet.", ""])
    for name, title in (("overhead.json", "16 trials"), ("overhead-4.json", "4 trials")):
        o = _load(folder, name)
        out += [f"#### Study overhead, {title}", ""] + (overhead_lines(o) if o else ["Not measured yet.", ""])
    heads = sorted(folder.glob("heads-*.json"))
    out += ["#### The structured heads beside the GRU", ""]
    for h in heads:
        out += heads_lines(json.loads(h.read_text()))
    out += [] if heads else ["Not measured yet.", ""]
    g = _load(folder, "gpu.json")
    none = "Unmeasured: no GPU has been lent to this project's sessions (`benchmarks/gpu.sh` is ready)."
    out += ["#### GPU", "", f"`{g['command']}`: {g['summary']}" if g else none, ""]
    return "\n".join(out + [PERF_END])


def perf_text(doc: str, folder: Path) -> str:
    """PERFORMANCE.md with its block replaced (the file must hold the two markers)."""
    if PERF_BEGIN not in doc or PERF_END not in doc:
        raise SystemExit(f"results.py: error: docs/PERFORMANCE.md has no {PERF_BEGIN} ... {PERF_END} block")
    head, rest = doc.split(PERF_BEGIN, 1)
    return head + render_block(folder) + rest.split(PERF_END, 1)[1]
