"""Leave-one-site-out table: each direction's plain evaluation and its inference levers, paired, Holm-corrected.

    .venv/bin/python benchmarks/site_transfer/summarize.py output/site_transfer --copy benchmarks/site_transfer/results

reads <out>/<direction>/test_<dataset>[_<lever>]/inference/corloc_per_image.csv (leave_one_site_out.sh, levers.sh),
copies the per-image files to --copy (committed: the table can be remade from them with --from-copy) and writes
<copy>/summary.{json,md}: per row CorLoc (score >= 0.5, IoU > 0.5), top-1 CorLoc, FP per normal image, AUC benign vs
malignant, and each lever against its direction's plain row (CorLoc difference, McNemar's exact p and its Holm
adjustment over every lever x direction comparison).

With --model-zoo MODEL_ZOO.md it also renders the default model card's table (the rows scored as the shipped
default scores, DETECTION_SCORE mass) between its <!-- loso-card:start/end --> markers; tests check it is current.
"""
import argparse
import json
import os

from wssdl_d2.evaluation.comparison import compare_folders

DIRECTIONS = {"busi_to_breast": "breast_test", "breast_to_busi": "busi_pool_train_strong_100"}
LABELS = {"busi_to_breast": "BUSI -> BrEaST", "breast_to_busi": "BrEaST -> BUSI"}
LEVERS = ("mass", "flip", "mass_flip")
METRICS = ("CorLoc", "CorLoc_top1", "FP_per_normal", "AUC_BvsM")


def holm(p_values):
    """Holm's step-down adjustment of a list of p-values (same order)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


CARD_MARKERS = ("<!-- loso-card:start -->", "<!-- loso-card:end -->")
CARD_LEVER = "mass"


def card_table(summary):
    """The default model card's rows (str, Markdown) from summary.json's content."""
    lines = ["  | trained on -> tested on | CorLoc, score >= 0.5 (%) | top-1 CorLoc (%) | FP per normal image | "
             "AUC benign vs malignant |", "  |---|---|---|---|---|"]
    for r in summary["rows"]:
        if r["lever"] == CARD_LEVER:
            lines.append(f"  | {r['direction']} ({r['images']} images) | {r['CorLoc']:.1f} | {r['CorLoc_top1']:.1f} | "
                         f"{r['FP_per_normal']:.2f} | {r['AUC_BvsM']:.3f} |")
    return "\n".join(lines)


def render_card(text, summary):
    """``text`` (MODEL_ZOO.md) with the table between CARD_MARKERS replaced by :func:`card_table`."""
    start, end = text.index(CARD_MARKERS[0]), text.index(CARD_MARKERS[1])
    return text[:start] + CARD_MARKERS[0] + "\n" + card_table(summary) + "\n  " + text[end:]


def _paths(csv):
    """The image paths (file_name column) of a per-image results file."""
    import csv as csv_module

    with open(csv) as f:
        return [row["file_name"] for row in csv_module.DictReader(f)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="leave_one_site_out.sh's output folder, or with --from-copy the copied results")
    parser.add_argument("--copy", help="folder to copy the per-image results and write the summary to")
    parser.add_argument("--from-copy", action="store_true", help="OUT is a --copy folder")
    parser.add_argument("--model-zoo", help="MODEL_ZOO.md whose default model card table to render")
    args = parser.parse_args()
    dest = args.out if args.from_copy else args.copy
    folders = {}
    for direction, dataset in DIRECTIONS.items():
        csvs = {}
        for lever in ("",) + LEVERS:
            name = f"test_{dataset}" + (f"_{lever}" if lever else "")
            csv = os.path.join(args.out, direction, name,
                               "corloc_per_image.csv" if args.from_copy else "inference/corloc_per_image.csv")
            if os.path.isfile(csv):
                csvs[(name, lever or "none")] = csv
        if not any(lever == "none" for _, lever in csvs):
            raise SystemExit(f"summarize: {os.path.join(args.out, direction)} has no test_{dataset} results "
                             "(corloc_per_image.csv): run leave_one_site_out.sh first")
        # image paths relative to what the direction's images share (a dataset's class folders), not this machine's
        prefix = None if args.from_copy else os.path.commonpath(
            [p for csv in csvs.values() for p in _paths(csv)]) + os.sep
        for (name, lever), csv in csvs.items():
            target = os.path.join(dest, direction, name)
            if not args.from_copy:
                os.makedirs(target, exist_ok=True)
                with open(csv) as f:
                    text = f.read().replace(prefix, "")
                with open(os.path.join(target, "corloc_per_image.csv"), "w") as f:
                    f.write(text)
            folders[(direction, lever)] = target
    rows, tests = [], []
    for (direction, lever), folder in folders.items():
        plain = folders[(direction, "none")]
        result = compare_folders(folder, plain, names=[lever, "none"])
        m = result["metrics"]
        row = {"direction": LABELS[direction], "lever": lever, "images": result["images"]}
        for metric in METRICS:
            row[metric] = m[metric]["a"]
        if lever != "none":
            row["CorLoc_diff"] = m["CorLoc"]["diff"]
            row["CorLoc_mcnemar_p"] = m["CorLoc"]["mcnemar"]["p_value"]
            row["CorLoc_top1_diff"] = m["CorLoc_top1"]["diff"]
            row["FP_per_normal_diff"] = m["FP_per_normal"]["diff"]
            tests.append(len(rows))
        rows.append(row)
    for i, p in zip(tests, holm([rows[i]["CorLoc_mcnemar_p"] for i in tests])):
        rows[i]["CorLoc_mcnemar_p_holm"] = p
    summary = {"comparisons_corrected": len(tests), "rows": rows}
    with open(os.path.join(dest, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if args.model_zoo:
        with open(args.model_zoo) as f:
            text = f.read()
        with open(args.model_zoo, "w") as f:
            f.write(render_card(text, summary))
    lines = ["| trained -> tested | inference | CorLoc | top-1 CorLoc | FP / normal image | AUC B vs M | "
             "CorLoc vs none (McNemar p, Holm) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        versus = "" if r["lever"] == "none" else \
            f"{r['CorLoc_diff']:+.1f} (p {r['CorLoc_mcnemar_p']:.2g}, Holm {r['CorLoc_mcnemar_p_holm']:.2g})"
        lines.append(f"| {r['direction']} | {r['lever']} | {r['CorLoc']:.1f} | {r['CorLoc_top1']:.1f} | "
                     f"{r['FP_per_normal']:.2f} | {r['AUC_BvsM']:.3f} | {versus} |")
    with open(os.path.join(dest, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
