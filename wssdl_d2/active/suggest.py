"""Which weak images an expert should box next: rank them by an acquisition function, write a CSV and a
contact sheet. The images the model is confident about are marked as the self-training rule's pseudo-label
candidates instead (``pseudo_candidate`` column)."""
import csv
import io
import os
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

from ..inference.analysis import analyze_records
from ..pseudo.selection import Candidate, select_from_config
from ..utils.atomic import atomic_open
from .contact_sheet import contact_sheet, write_png
from .scoring import rank_images

if TYPE_CHECKING:
    from ..inference import WSSDLPredictor
    from ..inference.analysis import ImageAnalysis

CSV_COLUMNS = ("rank", "file_name", "image_label", "score", "moi_uncertainty", "moi_entropy", "label_disagreement",
               "top_class", "top_score", "top_box", "moi_box", "pseudo_candidate")


def suggest(predictor: "WSSDLPredictor", records: Sequence[Dict[str, Any]], method: str = "combined",
            seed: int = 0) -> List[Dict[str, Any]]:
    """Ranked rows (see :func:`wssdl_d2.active.scoring.rank_images`) of the mass-labelled ``records`` (dataset
    dicts), with the pseudo-label candidates of ``predictor.cfg.WSSDL.SELFTRAIN`` marked."""
    return suggest_with_analyses(predictor, records, method, seed)[0]


def suggest_with_analyses(predictor: "WSSDLPredictor", records: Sequence[Dict[str, Any]], method: str = "combined",
                          seed: int = 0) -> Tuple[List[Dict[str, Any]], Dict[str, "ImageAnalysis"]]:
    """(rows of :func:`suggest`, {file name: :class:`~wssdl_d2.inference.analysis.ImageAnalysis`}): the
    analyses carry the detections that Label Studio shows as pre-annotations."""
    analyses = analyze_records(predictor, records)
    selected, _ = select_from_config([Candidate.from_analysis(a) for a in analyses], predictor.cfg)
    rows = rank_images(analyses, method, seed, pseudo_keys=[c.key for c in selected])
    return rows, {a.file_name: a for a in analyses}


def write_suggestions(folder: str, rows: Sequence[Dict[str, Any]], top: int = 24, columns: int = 6,
                      overwrite: bool = False) -> Tuple[str, str]:
    """Write ``suggestions.csv`` (every row) and ``contact_sheet.png`` (the first ``top`` rows) into ``folder``;
    existing files are refused unless ``overwrite``. Returns the two paths."""
    csv_path, png_path = os.path.join(folder, "suggestions.csv"), os.path.join(folder, "contact_sheet.png")
    existing = [p for p in (csv_path, png_path) if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist(s); pass --overwrite to replace")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_open(csv_path, "w", newline="") as f:
        f.write(buffer.getvalue())
    write_png(png_path, contact_sheet(rows[:top], columns=columns))
    return csv_path, png_path
