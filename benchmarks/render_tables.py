"""Render the result tables of README.md, BENCHMARKS.md and MODEL_ZOO.md from committed result files.

    python benchmarks/render_tables.py            # rewrite the blocks in place
    python benchmarks/render_tables.py --check    # exit 1 if a block differs from what its files give

Each block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in its Markdown file; everything
outside the markers is left alone. Sources (all committed, none trained here):

- ``benchmarks/site_transfer/results/summary.json``: leave-one-site-out with the converged recipe
  (``benchmarks/site_transfer/summarize.py``),
- ``benchmarks/quickstart/seeds.json``: the quickstart's pair over 8 seeds x 1 and 2 threads
  (``benchmarks/quickstart/summarize_seeds.py``),
- ``benchmarks/near_duplicates/results.json``: the near-duplicate detectors on labelled BUSI pairs
  (``benchmarks/near_duplicates/evaluate.py``),
- ``benchmarks/recipe/inner_fold0_fully_supervised_curve.csv``: the converged recipe on fold 0's inner split,
- ``wssdl_d2/model_zoo/checkpoints.json`` and each shipped model's ``calibration.json``: the shipped models.

MODEL_ZOO.md's leave-one-site-out card is rendered by ``benchmarks/site_transfer/summarize.py --model-zoo``.
Standard library only, so that ``tests/test_result_tables.py`` checks every block in well under a second.
"""
import argparse
import csv
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SITE_TRANSFER = "benchmarks/site_transfer/results/summary.json"
SEEDS = "benchmarks/quickstart/seeds.json"
NEAR_DUPLICATES = "benchmarks/near_duplicates/results.json"
RECIPE_CURVE = "benchmarks/recipe/inner_fold0_fully_supervised_curve.csv"
CHECKPOINTS = "wssdl_d2/model_zoo/checkpoints.json"

CMD_LOSO = ("WSSDL_DATASETS=$PWD/datasets bash benchmarks/site_transfer/leave_one_site_out.sh "
            "output/site_transfer 3000`, then `WSSDL_DATASETS=$PWD/datasets bash "
            "benchmarks/site_transfer/levers.sh output/site_transfer mass flip")
CMD_SEEDS = 'bash benchmarks/quickstart/run_seeds.sh output/quickstart_seeds "0 1 2 3 4 5 6 7" "1 2"'
CMD_DUPLICATES = ("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/near_duplicates/evaluate.py "
                  "--busi ../shared/data/BUSI/Dataset_BUSI_with_GT "
                  "--breast ../shared/data/BrEaST/Dataset_BUSI_with_GT")
CMD_RECIPE = ("WSSDL_DATASETS=$PWD/datasets bash benchmarks/recipe/converged_inner_fold0.sh "
              "output/recipe/inner_fold0 3000")

#: the scoring the shipped default detector uses (WSSDL.TEST.DETECTION_SCORE mass)
SHIPPED_LEVER = "mass"


def _load_json(path):
    with open(os.path.join(ROOT, path)) as f:
        return json.load(f)


def _loso_rows(summary, lever):
    return [r for r in summary["rows"] if r["lever"] == lever]


def _seed_span(seeds, metric, field):
    values = [run[metric][field] for run in seeds["runs"]]
    return min(values), max(values)


def readme_results():
    """README's one results table: leave-one-site-out, plain scoring and the shipped default's mass score."""
    summary = _load_json(SITE_TRANSFER)
    lines = ["| trained on -> tested on | scoring | CorLoc (%) | top-1 CorLoc (%) | FP per normal image | "
             "AUC benign vs malignant |", "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        if r["lever"] in ("none", SHIPPED_LEVER):
            scoring = "class score" if r["lever"] == "none" else "mass score (shipped default)"
            lines.append(f"| {r['direction']} ({r['images']} images) | {scoring} | {r['CorLoc']:.1f} | "
                         f"{r['CorLoc_top1']:.1f} | {r['FP_per_normal']:.2f} | {r['AUC_BvsM']:.3f} |")
    return "\n".join(lines)


def readme_quickstart():
    """README's sentence on what the quickstart's pair did over every measured seed and thread count."""
    seeds = _load_json(SEEDS)
    runs = seeds["runs"]
    auc, acc = _seed_span(seeds, "AUC_BvsM", "diff"), _seed_span(seeds, "Accuracy", "diff")
    mal, cor = _seed_span(seeds, "CorLoc-malignant", "joint"), _seed_span(seeds, "CorLoc", "diff")
    significant = sum(run["CorLoc"]["mcnemar_p"] < 0.05 and run["CorLoc"]["diff"] > 0 for run in runs)
    return (f"Over {len(runs)} runs ({len(set(r['seed'] for r in runs))} seeds x "
            f"{' and '.join(str(t) for t in sorted(set(r['threads'] for r in runs)))} threads per run; "
            f"[benchmarks/quickstart/seeds.md](benchmarks/quickstart/seeds.md)) the joint model's benign-vs-malignant "
            f"AUC was {auc[0]:+.3f} to {auc[1]:+.3f} above strong-only's and its diagnosis accuracy {acc[0]:+.1f} to "
            f"{acc[1]:+.1f} points. Whether it also boxes the malignant masses depends on the seed and the CPU: "
            f"CorLoc-malignant {mal[0]:.1f} to {mal[1]:.1f}%, CorLoc {cor[0]:+.1f} to {cor[1]:+.1f} points over "
            f"strong-only, ahead with McNemar p < 0.05 in {significant} of {len(runs)} runs.")


def readme_shipped():
    """README's list of the models shipped inside the package."""
    index = _load_json(CHECKPOINTS)
    lines = []
    for name, entry in index["models"].items():
        lines.append(f"- `{name}`: {entry['dtype']} safetensors, {entry['size']:,} bytes; trained on "
                     f"{entry['trained_on']}.")
    return "\n".join(lines)


def benchmarks_summary():
    """BENCHMARKS.md's summary table: the current headline results, each with its section and command."""
    summary, seeds = _load_json(SITE_TRANSFER), _load_json(SEEDS)
    duplicates, index = _load_json(NEAR_DUPLICATES), _load_json(CHECKPOINTS)
    with open(os.path.join(ROOT, RECIPE_CURVE)) as f:
        curve = list(csv.DictReader(f))
    last = max(curve, key=lambda row: int(row["iteration"]))
    lines = ["| result | numbers | section | command |", "|---|---|---|---|"]
    lines.append(f"| converged recipe, fully supervised, fold 0's inner validation split ({last['iteration']} "
                 f"iterations) | CorLoc {float(last['CorLoc']):.1f}, top-1 CorLoc {float(last['CorLoc_top1']):.1f}, "
                 f"AUC B vs M {float(last['AUC_BvsM']):.3f} | [recipe](#a-converged-recipe-chosen-on-fold-0s-inner-"
                 f"split-now-in-configsbusibase-busiyaml) | `{CMD_RECIPE}` |")
    for r in _loso_rows(summary, SHIPPED_LEVER):
        plain = next(p for p in _loso_rows(summary, "none") if p["direction"] == r["direction"])
        lines.append(f"| leave-one-site-out, {r['direction']}, mass score | CorLoc {r['CorLoc']:.1f} "
                     f"(class score {plain['CorLoc']:.1f}; McNemar p {r['CorLoc_mcnemar_p']:.2g}, Holm "
                     f"{r['CorLoc_mcnemar_p_holm']:.2g}), top-1 CorLoc {r['CorLoc_top1']:.1f}, FP per normal image "
                     f"{r['FP_per_normal']:.2f}, AUC B vs M {r['AUC_BvsM']:.3f} | [another hospital]"
                     f"(#another-hospital-leave-one-site-out-with-the-converged-recipe-and-two-inference-levers) | "
                     f"`{CMD_LOSO}` |")
    runs = seeds["runs"]
    cor, auc = _seed_span(seeds, "CorLoc", "diff"), _seed_span(seeds, "AUC_BvsM", "diff")
    acc = _seed_span(seeds, "Accuracy", "diff")
    significant = sum(run["CorLoc"]["mcnemar_p"] < 0.05 and run["CorLoc"]["diff"] > 0 for run in runs)
    lines.append(f"| quickstart, joint minus strong-only over {len(runs)} runs (seeds x threads) | AUC B vs M "
                 f"{auc[0]:+.3f} to {auc[1]:+.3f}, accuracy {acc[0]:+.1f} to {acc[1]:+.1f}, CorLoc {cor[0]:+.1f} to "
                 f"{cor[1]:+.1f} (p < 0.05 in {significant} of {len(runs)}) | [quickstart]"
                 f"(#quickstart-the-readmes-main-command-over-seeds-and-thread-counts) | `{CMD_SEEDS}` |")
    for method in ("phash+orb", "phash"):
        m = duplicates["methods"][method]
        g = m["group"]
        lines.append(f"| near-duplicate groups, `{method}`, {duplicates['labelled_pairs']} labelled BUSI pairs | "
                     f"precision {g['precision']:.1f} ({g['tp']}/{g['tp'] + g['fp']}), recall {g['recall']:.1f} "
                     f"({g['tp']}/{g['tp'] + g['fn']}); BrEaST links {m['breast_linked_pairs']} | [near-duplicates]"
                     f"(#near-duplicate-groups-perceptual-hash-vs-phash--orb-feature-matching) | "
                     f"`{CMD_DUPLICATES}` |")
    names = ", ".join(f"`{name}`" for name in index["models"])
    lines.append(f"| shipped models | {len(index['models'])}: {names} | [MODEL_ZOO.md](MODEL_ZOO.md) | each "
                 f"model's training command is in its card and in `{CHECKPOINTS}` |")
    return "\n".join(lines)


def model_zoo_shipped():
    """MODEL_ZOO.md's table of the shipped models: the index entry and each model's calibration file."""
    index = _load_json(CHECKPOINTS)
    lines = ["| model | trained on | float16 file (bytes) | calibration data | ECE before / after | "
             "log-loss before / after |", "|---|---|---|---|---|---|"]
    for name, entry in index["models"].items():
        cal = _load_json(os.path.join(os.path.dirname(CHECKPOINTS), entry["calibration"]["path"]))
        fitted, data = cal["methods"][cal["method"]]["cross_fitted"], cal["data"]
        lines.append(f"| `{name}` | {entry['trained_on']} | {entry['size']:,} | {data['images']} images, "
                     f"{data['malignant']} malignant, {data['folds']} folds ({cal['method']}, cross-fitted) | "
                     f"{cal['uncalibrated']['ece']:.3f} / {fitted['ece']:.3f} | "
                     f"{cal['uncalibrated']['log_loss']:.3f} / {fitted['log_loss']:.3f} |")
    return "\n".join(lines)


#: file -> block name -> renderer
BLOCKS = {
    "README.md": {"quickstart-range": readme_quickstart, "results": readme_results, "shipped": readme_shipped},
    "BENCHMARKS.md": {"summary": benchmarks_summary},
    "MODEL_ZOO.md": {"shipped-models": model_zoo_shipped},
}


def render(text, name, content):
    """``text`` with the block ``name`` replaced by ``content`` (markers kept, each on its own line)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise KeyError(f"no {start} ... {end} block")
    i, j = text.index(start), text.index(end)
    return text[:i] + start + "\n" + content + "\n" + text[j:]


def render_file(path, text=None):
    """(old text, rendered text) of one of BLOCKS' files (relative to the repository root)."""
    if text is None:
        with open(os.path.join(ROOT, path)) as f:
            text = f.read()
    new = text
    for name, renderer in BLOCKS[path].items():
        new = render(new, name, renderer())
    return text, new


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in BLOCKS:
        old, new = render_file(path)
        if old != new:
            stale.append(path)
            if not args.check:
                with open(os.path.join(ROOT, path), "w") as f:
                    f.write(new)
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (run python benchmarks/render_tables.py)", file=sys.stderr)
        return 1
    print(("rendered: " if stale else "current: ") + ", ".join(stale or BLOCKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
