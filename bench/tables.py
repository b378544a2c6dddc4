#!/usr/bin/env python3
"""Markdown tables for docs/PERFORMANCE.md from the JSON of `pixelflux-bench --json` and of
bench/compare.py:

    python3 bench/tables.py --bench target/bench.json --compare target/compare/compare.json
"""

import argparse
import json


def f(v, spec):
    return "–" if v is None else format(v, spec)


def bench_table(path):
    data = json.load(open(path))
    out = ["| scene | codec | source | fps | delivered fps | stripes/frame | kbit/s | CPU ms/frame "
           "| cores | PSNR dB | latency p50 / p99 ms | grab / detect / encode / deliver ms per frame |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["results"]:
        s = r["stage_ms_per_frame"]
        lat = r["callback_latency_ms"]
        out.append(
            f"| {r['scene']} | {r['codec']} | {r['source']} | {r['capture_fps']:.1f} "
            f"| {r['delivered_fps']:.1f} | {r['stripes_per_frame']:.2f} | {r['kbit_per_s']:,.0f} "
            f"| {r['cpu_ms_per_frame']:.2f} | {r['cpu_cores']:.3f} | {f(r['psnr_db'], '.1f')} "
            f"| {lat['p50']:.1f} / {lat['p99']:.1f} "
            f"| {s['grab']:.2f} / {s['detect']:.2f} / {s['encode']:.2f} / {s['deliver']:.2f} |")
    return "\n".join(out)


def psnr(r):
    """PSNR (worst); for a real application also the settled picture's."""
    text = f"{f(r.get('psnr_db'), '.1f')} ({f(r.get('psnr_min_db'), '.1f')})"
    if r.get("psnr_settled_db") is not None:
        text += f", settled {r['psnr_settled_db']:.1f}"
    return text


def compare_table(path):
    data = json.load(open(path))
    out = ["| workload | codec | CPU cores ours / upstream | ratio | CPU per delivered frame ratio "
           "| kbit/s ours / upstream | ratio | frames delivered ours / upstream | ratio "
           "| PSNR dB ours / upstream (worst) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["results"]:
        o, u, q = r.get("ours", {}), r.get("upstream", {}), r.get("ratios", {})
        out.append(
            f"| {r['scene']} | {r['codec']} "
            f"| {f(o.get('cpu_cores'), '.3f')} / {f(u.get('cpu_cores'), '.3f')} "
            f"| **{f(q.get('cpu'), '.2f')}** | {f(q.get('cpu_per_frame'), '.2f')} "
            f"| {f(o.get('kbit_per_s'), ',.0f')} / {f(u.get('kbit_per_s'), ',.0f')} "
            f"| **{f(q.get('bytes'), '.3f')}** "
            f"| {f(o.get('frames_delivered'), 'd')} / {f(u.get('frames_delivered'), 'd')} "
            f"| **{f(q.get('frames', q.get('fps')), '.2f')}** "
            f"| {psnr(o)} / {psnr(u)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench")
    ap.add_argument("--compare", action="append", default=[])
    args = ap.parse_args()
    if args.bench:
        print(bench_table(args.bench))
        print()
    for c in args.compare:
        print(compare_table(c))
        print()


if __name__ == "__main__":
    main()
