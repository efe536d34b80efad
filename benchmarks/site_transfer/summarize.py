"""Leave-one-site-out table: each direction's plain evaluation and its inference levers, paired, Holm-corrected.

    .venv/bin/python benchmarks/site_transfer/summarize.py output/site_transfer --copy benchmarks/site_transfer/results

reads <out>/<direction>/test_<dataset>[_<lever>]/inference/corloc_per_image.csv (leave_one_site_out.sh, levers.sh),
copies the per-image files to --copy (committed: the table can be remade from them with --from-copy) and writes
<copy>/summary.{json,md}: per row CorLoc (score >= 0.5, IoU > 0.5), top-1 CorLoc, FP per normal image, AUC benign vs
malignant, and each lever against its direction's plain row (CorLoc difference, McNemar's exact p and its Holm
adjustment over every lever x direction comparison). With --groups DIRECTION=PREPARED_ROOT (the tested site's
preparation, e.g. breast_to_busi=datasets/busi_pool) it copies that site's near-duplicate groups
(<copy>/<direction>/near_duplicate_groups.csv: file name, group) and adds the clustered McNemar p of CorLoc and top-1
CorLoc (images of one lesion are one unit; wssdl_d2.evaluation.bootstrap.mcnemar_clustered); --from-copy reads the
copied groups.

With --model-zoo MODEL_ZOO.md it also renders the default model card's table (the rows scored as the shipped
default scores, DETECTION_SCORE mass) between its <!-- loso-card:start/end --> markers; tests check it is current.
"""
import argparse
import csv as csv_module
import json
import os

import numpy as np

from wssdl_d2.data.prepared import read_near_duplicate_groups
from wssdl_d2.evaluation.bootstrap import holm_adjust, mcnemar_clustered
from wssdl_d2.evaluation.comparison import compare_folders
from wssdl_d2.evaluation.pooled import cluster_labels
from wssdl_d2.evaluation.results_io import read_per_image

DIRECTIONS = {"busi_to_breast": "breast_test", "breast_to_busi": "busi_pool_train_strong_100"}
LABELS = {"busi_to_breast": "BUSI -> BrEaST", "breast_to_busi": "BrEaST -> BUSI"}
LEVERS = ("mass", "flip", "mass_flip")
METRICS = ("CorLoc", "CorLoc_top1", "FP_per_normal", "AUC_BvsM")


GROUPS_FILE = "near_duplicate_groups.csv"


def read_groups_copy(path):
    """{file name: group} of a copied near_duplicate_groups.csv."""
    with open(path, newline="") as f:
        return {row["file_name"]: int(row["group"]) for row in csv_module.DictReader(f)}


def write_groups_copy(groups, path):
    """Write {file name: group} as near_duplicate_groups.csv (file names only, no image data)."""
    with open(path, "w", newline="") as f:
        writer = csv_module.writer(f)
        writer.writerow(["file_name", "group"])
        for name in sorted(groups):
            writer.writerow([name, groups[name]])


def clustered_p_values(folder, plain, groups):
    """Clustered McNemar p of CorLoc and top-1 CorLoc, ``folder``'s per-image results against ``plain``'s."""
    a, b = read_per_image(folder), read_per_image(plain)
    position = {f: i for i, f in enumerate(b["file_name"])}
    order = np.asarray([position[f] for f in a["file_name"]])
    clusters = cluster_labels(a["file_name"], groups)
    mass = np.asarray(a["has_mass"], bool)
    out = {}
    for metric, column in (("CorLoc", "hit_any"), ("CorLoc_top1", "hit_top1")):
        right_a = np.asarray(a[column], bool)[mass]
        right_b = np.asarray(b[column], bool)[order][mass]
        out[metric] = mcnemar_clustered(right_a, right_b, clusters[mass])["p_value"]
    return out


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
    with open(csv) as f:
        return [row["file_name"] for row in csv_module.DictReader(f)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="leave_one_site_out.sh's output folder, or with --from-copy the copied results")
    parser.add_argument("--copy", help="folder to copy the per-image results and write the summary to")
    parser.add_argument("--from-copy", action="store_true", help="OUT is a --copy folder")
    parser.add_argument("--model-zoo", help="MODEL_ZOO.md whose default model card table to render")
    parser.add_argument("--groups", nargs="*", default=[], metavar="DIRECTION=PREPARED_ROOT",
                        help="the tested site's preparation, whose meta/groups.csv gives the near-duplicate groups")
    args = parser.parse_args()
    group_roots = dict(item.split("=", 1) for item in args.groups)
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
    groups_by_direction = {}
    for direction in DIRECTIONS:
        copied = os.path.join(dest, direction, GROUPS_FILE)
        if direction in group_roots:
            write_groups_copy(read_near_duplicate_groups(group_roots[direction]), copied)
        if os.path.isfile(copied):
            groups_by_direction[direction] = read_groups_copy(copied)
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
            row["CorLoc_top1_mcnemar_p"] = m["CorLoc_top1"]["mcnemar"]["p_value"]
            if direction in groups_by_direction:
                clustered = clustered_p_values(folder, plain, groups_by_direction[direction])
                row["CorLoc_mcnemar_p_clustered"] = clustered["CorLoc"]
                row["CorLoc_top1_mcnemar_p_clustered"] = clustered["CorLoc_top1"]
            tests.append(len(rows))
        rows.append(row)
    for i, p in zip(tests, holm_adjust([rows[i]["CorLoc_mcnemar_p"] for i in tests])):
        rows[i]["CorLoc_mcnemar_p_holm"] = float(p)
    summary = {"comparisons_corrected": len(tests), "rows": rows}
    with open(os.path.join(dest, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    if args.model_zoo:
        with open(args.model_zoo) as f:
            text = f.read()
        with open(args.model_zoo, "w") as f:
            f.write(render_card(text, summary))
    lines = ["| trained -> tested | inference | CorLoc | top-1 CorLoc | FP / normal image | AUC B vs M | "
             "CorLoc vs none (McNemar p, Holm; clustered p where the site has near-duplicate groups) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        versus = "" if r["lever"] == "none" else \
            f"{r['CorLoc_diff']:+.1f} (p {r['CorLoc_mcnemar_p']:.2g}, Holm {r['CorLoc_mcnemar_p_holm']:.2g}" + \
            (f"; clustered {r['CorLoc_mcnemar_p_clustered']:.2g}" if "CorLoc_mcnemar_p_clustered" in r else "") + ")"
        lines.append(f"| {r['direction']} | {r['lever']} | {r['CorLoc']:.1f} | {r['CorLoc_top1']:.1f} | "
                     f"{r['FP_per_normal']:.2f} | {r['AUC_BvsM']:.3f} | {versus} |")
    with open(os.path.join(dest, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
