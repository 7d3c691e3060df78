#!/usr/bin/env python3
"""Markdown tables from ffn_block_bench's JSON (--benchmark_out=FILE).

  build/bench/ffn_block_bench --benchmark_repetitions=3 \\
      --benchmark_report_aggregates_only=true --benchmark_out=ffn.json
  python3 bench/ffn_block_report.py ffn.json [--torch torch.txt]

Prints, per shape and dtype, the median ms of every activation x strategy
at every M; then, per shape/activation/dtype, the fastest strategy at each
M, its GFLOP/s and share of the matmul peak, the activation's cost over the
identity (the two matmuls alone) and, with --torch (the output of
bench/pytorch_baseline.py), PyTorch's time and our speed-up; where the run
has the `invariant` path, the cost of batch invariance: its time against the
faster of unfused and fused (what auto picks without it).
"""
import argparse
import collections
import json
import sys


def load(path):
    with open(path) as f:
        data = json.load(f)
    # Medians when the run had repetitions, the single runs otherwise.
    has_aggregates = any(b.get("run_type") == "aggregate" for b in data["benchmarks"])
    runs = {}
    for b in data["benchmarks"]:
        if has_aggregates and b.get("aggregate_name") != "median":
            continue
        shape, activation, dtype, strategy, m = b["run_name"].split("/")[:5]
        runs[(shape, activation, dtype, strategy, int(m))] = b
    return data.get("context", {}), runs


def load_torch(path):
    table = {}
    tokens = []
    with open(path) as f:
        for line in f:
            if line.startswith("shape/"):
                tokens = [int(t[2:]) for t in line.split()[1:]]
            elif line.startswith("torch/"):
                name, *values = line.split()
                _, shape, activation, dtype = name.split("/")
                for m, v in zip(tokens, values):
                    table[(shape, activation, dtype, m)] = float(v)
    return table


def ms(b):
    unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * unit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("json")
    parser.add_argument("--torch")
    args = parser.parse_args()
    context, runs = load(args.json)
    torch = load_torch(args.torch) if args.torch else {}
    shapes = collections.OrderedDict()
    for shape, activation, dtype, strategy, m in runs:
        shapes.setdefault((shape, dtype), set()).add(m)
    print(f"<!-- {context.get('date', '')}, {context.get('num_cpus', '?')} CPUs -->")
    for (shape, dtype), ms_set in shapes.items():
        tokens = sorted(ms_set)
        print(f"\n#### {shape}, {dtype}: median ms per call\n")
        print("| activation / strategy | " + " | ".join(f"M={m}" for m in tokens) + " |")
        print("|---|" + "---|" * len(tokens))
        rows = sorted({(a, s) for (sh, a, d, s, _) in runs if sh == shape and d == dtype},
                      key=lambda r: (r[0] != "identity", r[0], r[1]))
        for activation, strategy in rows:
            cells = []
            for m in tokens:
                b = runs.get((shape, activation, dtype, strategy, m))
                cells.append(f"{ms(b):.3g}" if b else "")
            print(f"| {activation} / {strategy} | " + " | ".join(cells) + " |")

    print("\n#### Fastest strategy per point\n")
    header = "| shape / activation / dtype | M | best | ms | GFLOP/s | % peak | weight GB/s (% read) | identity ms | act. cost |"
    if torch:
        header += " PyTorch ms | speed-up |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    keys = sorted({(sh, a, d, m) for (sh, a, d, s, m) in runs if a != "identity"})
    for shape, activation, dtype, m in keys:
        best = min(((ms(b), s, b) for (sh, a, d, s, mm), b in runs.items()
                    if (sh, a, d, mm) == (shape, activation, dtype, m)), key=lambda t: t[0])
        t, strategy, b = best
        identity = min((ms(bb) for (sh, a, d, s, mm), bb in runs.items()
                        if (sh, a, d, mm) == (shape, "identity", dtype, m)), default=None)
        gflops, peak = b["GFLOP/s"], b["peak_GFLOPs"]
        bw = ""
        if "weight_GBps" in b:
            bw = f"{b['weight_GBps']:.1f} ({100 * b['weight_GBps'] / b['read_GBps']:.0f} %)"
        # The activation's share of the call: (best - identity) / best.
        identity_cell = f"{identity:.3g}" if identity else ""
        cost = f"{100 * (t - identity) / t:+.1f} %" if identity else ""
        row = (f"| {shape} / {activation} / {dtype} | {m} | {strategy} | {t:.3g} | {gflops:.0f} | "
               f"{100 * gflops / peak:.0f} | {bw} | {identity_cell} | {cost} |")
        if torch:
            tt = torch.get((shape, activation, dtype, m))
            row += f" {tt:.3g} | {tt / t:.2f}x |" if tt else " | |"
        print(row)

    invariant = sorted({(sh, a, d, m) for (sh, a, d, s, m) in runs if s == "invariant"})
    if invariant:
        print("\n#### Cost of batch invariance\n")
        print("| shape / activation / dtype | M | invariant ms | unfused ms | fused ms | cost |")
        print("|---|---|---|---|---|---|")
        for shape, activation, dtype, m in invariant:
            inv = ms(runs[(shape, activation, dtype, "invariant", m)])
            others = {s: ms(runs[(shape, activation, dtype, s, m)]) for s in ("unfused", "fused")
                      if (shape, activation, dtype, s, m) in runs}
            best = min(others.values()) if others else None
            cells = " | ".join(f"{others[s]:.3g}" if s in others else "" for s in ("unfused", "fused"))
            cost = f"{100 * (inv / best - 1):+.0f} %" if best else ""
            print(f"| {shape} / {activation} / {dtype} | {m} | {inv:.3g} | {cells} | {cost} |")


if __name__ == "__main__":
    sys.exit(main())
