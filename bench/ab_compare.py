#!/usr/bin/env python3
"""Two builds of a Google Benchmark program, timed in alternation: before/after.

  python3 bench/ab_compare.py OLD_BINARY NEW_BINARY --rounds 3 \\
      --filter '(ffn-768/gelu|glu-768/swiglu)/(f32|bf16)/(unfused|fused)/(1|32|512)/'

Runs OLD then NEW, `rounds` times (so machine noise falls on both alike),
each round one repetition of every benchmark the filter selects, and prints a
Markdown table: per benchmark the median real time of each build over the
rounds, the ratio new/old, and the min-max range of each, so a change can be
told from noise. Extra arguments after `--` go to both programs.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile


def run(binary, filter_regex, min_time, extra):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([binary, f"--benchmark_filter={filter_regex}",
                        f"--benchmark_min_time={min_time}",
                        f"--benchmark_out={out.name}", "--benchmark_out_format=json", *extra],
                       check=True, stdout=subprocess.DEVNULL)
        data = json.load(open(out.name))
    unit_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    return {b["run_name"]: b["real_time"] * unit_ms[b["time_unit"]]
            for b in data["benchmarks"] if b.get("run_type", "iteration") == "iteration"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--filter", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", default="0.2")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    times = {"old": {}, "new": {}}
    for r in range(args.rounds):
        for which in ("old", "new"):
            for name, ms in run(getattr(args, which), args.filter, args.min_time,
                                args.extra).items():
                times[which].setdefault(name, []).append(ms)
            print(f"round {r + 1}/{args.rounds}: {which} done", file=sys.stderr)
    print("| benchmark | old ms (median, range) | new ms (median, range) | new/old |")
    print("|---|---|---|---|")
    ratios = []
    for name in times["old"]:
        old, new = times["old"][name], times["new"].get(name)
        if not new:
            continue
        o, n = statistics.median(old), statistics.median(new)
        ratios.append(n / o)
        print(f"| {name.removesuffix('/real_time')} | {o:.4g} ({min(old):.4g}-{max(old):.4g}) "
              f"| {n:.4g} ({min(new):.4g}-{max(new):.4g}) | {n / o:.3f} |")
    if ratios:
        print(f"\nmedian new/old over {len(ratios)} benchmarks: {statistics.median(ratios):.3f} "
              f"(geometric mean {statistics.geometric_mean(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
