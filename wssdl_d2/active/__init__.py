"""Active annotation: acquisition scores, suggestions with a contact sheet, and the simulated annotator."""
from .scoring import ACQUISITIONS, acquisition_scores, rank_images

__all__ = ["ACQUISITIONS", "acquisition_scores", "rank_images"]
