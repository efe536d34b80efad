#!/usr/bin/env python
"""Near-duplicate grouping: the perceptual hash alone vs pHash + ORB feature matching.

    OMP_NUM_THREADS=1 python benchmarks/near_duplicates/evaluate.py \\
        --busi ../shared/data/BUSI/Dataset_BUSI_with_GT --breast ../shared/data/BrEaST/Dataset_BUSI_with_GT

For each method it groups every BUSI image (``wssdl_d2.data.near_duplicates``) and reports, on the pairs of
``labelled_pairs.csv`` (file names relative to the BUSI root, looked at by eye), precision and recall when a pair
is predicted positive because both images land in one group ("group") and because the pair itself is linked
("direct"); the number of groups and linked pairs on BUSI and on BrEaST (one scan per patient: every link there
is a false positive), and the run time (one process; run it with one thread). Writes ``results.json`` and
``results.md`` beside this script (or into ``--out``).
"""
import argparse
import csv
import json
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from wssdl_d2.data.near_duplicates import (DUPLICATE_METHODS, duplicate_parameters,  # noqa: E402
                                           groups_from_pairs, near_duplicate_pairs)

HERE = os.path.dirname(os.path.abspath(__file__))


def list_images(root):
    """Image files of a BUSI-layout tree (masks left out), sorted, relative to ``root``."""
    out = []
    for folder in sorted(os.listdir(root)):
        if os.path.isdir(os.path.join(root, folder)):
            out += [f"{folder}/{f}" for f in sorted(os.listdir(os.path.join(root, folder)))
                    if f.lower().endswith(".png") and "_mask" not in f]
    return out


def precision_recall(truth, predicted):
    """(precision, recall, tp, fp, fn) in percent of 0/1 sequences."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp, fp, fn = int((truth & predicted).sum()), int((~truth & predicted).sum()), int((truth & ~predicted).sum())
    return (100.0 * tp / max(tp + fp, 1), 100.0 * tp / max(tp + fn, 1), tp, fp, fn)


def run(root, method):
    """Linked pairs (list of LinkedPair), group ids (N,), seconds, for every image under ``root``."""
    files = list_images(root)
    start = time.perf_counter()
    pairs = near_duplicate_pairs([os.path.join(root, f) for f in files], method, progress=False)
    groups = groups_from_pairs(len(files), np.array([(p.i, p.j) for p in pairs], np.int64))
    return files, pairs, groups, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--busi", required=True, help="BUSI Dataset_BUSI_with_GT folder")
    parser.add_argument("--breast", help="BrEaST Dataset_BUSI_with_GT folder (one scan per patient)")
    parser.add_argument("--labels", default=os.path.join(HERE, "labelled_pairs.csv"))
    parser.add_argument("--out", default=HERE, help="folder for results.json / results.md")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    with open(args.labels, newline="") as f:
        labelled = list(csv.DictReader(f))
    truth = [int(r["same_lesion"]) for r in labelled]
    results = {"labelled_pairs": len(labelled), "positives": sum(truth), "methods": {}}
    for method in DUPLICATE_METHODS:
        files, pairs, groups, seconds = run(args.busi, method)
        index = {f: k for k, f in enumerate(files)}
        linked = {(p.i, p.j) for p in pairs}
        ab = [tuple(sorted((index[r["file_a"]], index[r["file_b"]]))) for r in labelled]
        entry = {"parameters": duplicate_parameters(method), "busi_images": len(files),
                 "busi_groups": int(groups.max() + 1), "busi_linked_pairs": len(pairs),
                 "busi_seconds": round(seconds, 1), "errors": []}
        for name, predicted in (("group", [groups[a] == groups[b] for a, b in ab]),
                                ("direct", [(a, b) in linked for a, b in ab])):
            p, r, tp, fp, fn = precision_recall(truth, predicted)
            entry[name] = {"precision": round(p, 1), "recall": round(r, 1), "tp": tp, "fp": fp, "fn": fn}
        entry["errors"] = [f"{'missed' if t else 'false link'}: {row['file_a']} / {row['file_b']} ({row['note']})"
                           for row, t, (a, b) in zip(labelled, truth, ab) if bool(t) != bool(groups[a] == groups[b])]
        if args.breast:
            bfiles, bpairs, bgroups, bseconds = run(args.breast, method)
            entry.update(breast_images=len(bfiles), breast_groups=int(bgroups.max() + 1),
                         breast_linked_pairs=len(bpairs), breast_seconds=round(bseconds, 1),
                         breast_links=[f"{bfiles[p.i]} / {bfiles[p.j]} ({p.evidence})" for p in bpairs])
        results["methods"][method] = entry
        print(json.dumps({k: v for k, v in entry.items() if k not in ("parameters",)}, indent=1))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown(results))
    print(markdown(results))


def markdown(results):
    """The results table (and the labelled pairs each method gets wrong) as Markdown."""
    lines = [f"Labelled BUSI pairs: {results['labelled_pairs']} ({results['positives']} same lesion).", "",
             "| method | precision (group) | recall (group) | precision (direct link) | recall (direct link) "
             "| BUSI groups (626 images) | BUSI linked pairs | BUSI time, s | BrEaST groups (256) | BrEaST links "
             "| BrEaST time, s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, e in results["methods"].items():
        g, d = e["group"], e["direct"]
        lines.append(f"| {method} | {g['precision']:.1f} ({g['tp']}/{g['tp'] + g['fp']}) | {g['recall']:.1f} "
                     f"({g['tp']}/{g['tp'] + g['fn']}) | {d['precision']:.1f} | {d['recall']:.1f} | {e['busi_groups']} "
                     f"| {e['busi_linked_pairs']} | {e['busi_seconds']} | {e.get('breast_groups', '-')} "
                     f"| {e.get('breast_linked_pairs', '-')} | {e.get('breast_seconds', '-')} |")
    for method, e in results["methods"].items():
        lines += ["", f"{method}: labelled pairs it groups wrongly ({len(e['errors'])}):", ""]
        lines += [f"- {x}" for x in e["errors"]] or ["- none"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
