#!/usr/bin/env python
"""The seed table of the quickstart's pair: one row per (threads, seed) run of run_seeds.sh, and the range.

    python benchmarks/quickstart/summarize_seeds.py output/quickstart_seeds --out benchmarks/quickstart/seeds

Reads ``<folder>/t<threads>_s<seed>/comparison.json`` (tools/compare.py --json) and writes ``<out>.md`` (the table
and the range of each column) and ``<out>.json`` (every row, for tests/test_quickstart.py's bounds and for README).
"""
import argparse
import glob
import json
import os
import re

METRICS = ("CorLoc", "CorLoc-malignant", "CorLoc_top1", "CorLoc-benign", "AUC_BvsM", "Accuracy")


def read_rows(folder):
    """One dict per run: threads, seed, and per metric joint (a), strong-only (b), diff and McNemar p."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "t*_s*", "comparison.json"))):
        match = re.search(r"t(\d+)_s(\d+)$", os.path.dirname(path))
        metrics = json.load(open(path))["metrics"]
        row = {"threads": int(match.group(1)), "seed": int(match.group(2))}
        for name in METRICS:
            m = metrics[name]
            row[name] = {"joint": m["a"], "strong_only": m["b"], "diff": m["diff"],
                         "mcnemar_p": (m.get("mcnemar") or {}).get("p_value"), "bootstrap_p": m.get("p_value")}
        rows.append(row)
    return sorted(rows, key=lambda r: (r["threads"], r["seed"]))


def markdown(rows):
    def p(value):
        return "-" if value is None else f"{value:.2g}"

    lines = ["| threads | seed | CorLoc joint / strong-only | diff | McNemar p | CorLoc-malignant joint / strong-only | "
             "McNemar p | top-1 CorLoc diff | CorLoc-benign diff | AUC B vs M joint / strong-only |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c, m, t, b, a, _ = (r[k] for k in METRICS)
        lines.append(f"| {r['threads']} | {r['seed']} | {c['joint']:.1f} / {c['strong_only']:.1f} | {c['diff']:+.1f} | "
                     f"{p(c['mcnemar_p'])} | {m['joint']:.1f} / {m['strong_only']:.1f} | {p(m['mcnemar_p'])} | "
                     f"{t['diff']:+.1f} | {b['diff']:+.1f} | {a['joint']:.3f} / {a['strong_only']:.3f} |")
    if rows:
        def span(key, field):
            values = [r[key][field] for r in rows if r[key][field] is not None]
            return min(values), max(values)

        lines.append("")
        significant = sum(r["CorLoc"]["mcnemar_p"] is not None and r["CorLoc"]["mcnemar_p"] < 0.05 and
                          r["CorLoc"]["diff"] > 0 for r in rows)
        lines.append(f"{len(rows)} runs. CorLoc difference {span('CorLoc', 'diff')[0]:+.1f} to "
                     f"{span('CorLoc', 'diff')[1]:+.1f} points, joint ahead with McNemar p < 0.05 in {significant} of "
                     f"{len(rows)}; CorLoc-malignant of the joint model {span('CorLoc-malignant', 'joint')[0]:.1f} to "
                     f"{span('CorLoc-malignant', 'joint')[1]:.1f} (strong-only at most "
                     f"{span('CorLoc-malignant', 'strong_only')[1]:.1f}); top-1 CorLoc difference "
                     f"{span('CorLoc_top1', 'diff')[0]:+.1f} to {span('CorLoc_top1', 'diff')[1]:+.1f}; AUC B vs M of the "
                     f"joint model {span('AUC_BvsM', 'joint')[0]:.3f} to {span('AUC_BvsM', 'joint')[1]:.3f}, difference "
                     f"{span('AUC_BvsM', 'diff')[0]:+.3f} to {span('AUC_BvsM', 'diff')[1]:+.3f}; diagnosis accuracy "
                     f"difference {span('Accuracy', 'diff')[0]:+.1f} to {span('Accuracy', 'diff')[1]:+.1f} points.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="run_seeds.sh's output folder")
    parser.add_argument("--out", help="write <out>.md and <out>.json")
    args = parser.parse_args(argv)
    rows = read_rows(args.folder)
    if not rows:
        raise SystemExit(f"error: {args.folder}: no t<threads>_s<seed>/comparison.json")
    text = markdown(rows)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".md", "w") as f:
            f.write(text)
        with open(args.out + ".json", "w") as f:
            json.dump({"runs": rows}, f, indent=1)


if __name__ == "__main__":
    main()
