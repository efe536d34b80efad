"""The Markdown table of a benchmark result (see :mod:`.run`): one row per measure, plain | joint | joint / plain."""
from typing import Any, Dict

MIB = 2 ** 20


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _speed_rows(result):
    rows = []
    images = result["settings"]["images_per_step"]
    if "train_step" in result:
        t = result["train_step"]
        rows.append(_row([f"training step, {images['strong']} strong + {images['weak']} weak images, median (p90) s",
                          f"{t['plain']['median_s']:.3f} ({t['plain']['p90_s']:.3f})",
                          f"{t['joint']['median_s']:.3f} ({t['joint']['p90_s']:.3f})", f"**{t['ratio']:.3f}x**"]))
    if "inference" in result:
        t = result["inference"]
        rows.append(_row(["inference latency per image, median (p90) ms",
                          f"{1e3 * t['plain']['median_s']:.1f} ({1e3 * t['plain']['p90_s']:.1f})",
                          f"{1e3 * t['joint']['median_s']:.1f} ({1e3 * t['joint']['p90_s']:.1f})",
                          f"**{t['ratio']:.3f}x**"]))
        rows.append(_row(["inference images / s", f"{t['plain']['images_per_s']:.2f}",
                          f"{t['joint']['images_per_s']:.2f}",
                          f"{t['plain']['images_per_s'] / t['joint']['images_per_s']:.3f}x (time)"]))
    return rows


def _memory_rows(result):
    rows = []
    memory = result.get("memory")
    if not memory:
        return rows
    for phase, label in (("train", "training"), ("infer", "inference")):
        m = memory[phase]
        rows.append(_row([f"peak memory, {label}: growth (peak) MiB",
                          f"{m['plain']['growth_bytes'] / MIB:.0f} ({m['plain']['peak_bytes'] / MIB:.0f})",
                          f"{m['joint']['growth_bytes'] / MIB:.0f} ({m['joint']['peak_bytes'] / MIB:.0f})",
                          f"{m['growth_ratio']:.2f}x ({m['peak_ratio']:.2f}x)"]))
    return rows


def _joint_only_rows(result):
    rows = []
    if "data_loading" in result:
        d = result["data_loading"]
        rows.append(_row([f"data loading, {d['num_workers']} workers: loader delivers / joint training consumes "
                          "(images / s)", "-", f"{d['images_per_s']:.1f} / {d['training_consumes_images_per_s']:.2f}",
                          f"{d['headroom']:.1f}x headroom"]))
    if "evaluation" in result:
        e = result["evaluation"]
        scope = f"first {e['images']} of {e['split_images']}" if e["capped"] else f"all {e['images']}"
        extra = f"; full split ~{e['full_split_estimate_s']:.0f} s" if e.get("full_split_estimate_s") else ""
        rows.append(_row([f"evaluation of {e['dataset']} ({scope} images): total s = data + inference + CorLoc "
                          "(process + evaluate)", "-",
                          f"{e['total_s']:.1f} = {e['data_s']:.1f} + {e['inference_s']:.1f} + "
                          f"{e['corloc_process_s'] + e['corloc_evaluate_s']:.1f} "
                          f"({e['corloc_process_s']:.2f} + {e['corloc_evaluate_s']:.2f}){extra}", "-"]))
    return rows


def markdown(result: Dict[str, Any]) -> str:
    """The result as a Markdown table with a header line (config, device, threads, load average)."""
    s = result["settings"]
    load = result["load_average_start"]
    head = (f"{s['config']} on {s['dataset']} ({s['device']}, {s['threads']} torch threads, load average "
            f"{load[0]:.2f} at start, {result['load_average_end'][0]:.2f} at end)")
    lines = [head, "", _row(["measure", "plain Faster R-CNN", "joint", "joint / plain"]), "|---|---|---|---|"]
    lines += _speed_rows(result) + _memory_rows(result) + _joint_only_rows(result)
    if "memory" in result:
        lines += ["", f"Memory: {result['memory']['method']}."]
    parts = ", ".join(f"{k} {v:.0f}" for k, v in result.get("part_wall_s", {}).items())
    lines += ["", f"Wall time {result.get('wall_s', 0):.0f} s ({parts})."]
    return "\n".join(lines)
