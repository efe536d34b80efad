"""Inference on single images: the predictor, image-level diagnosis from detections, drawings, result files."""
from .diagnosis import Diagnosis, diagnose
from .predictor import Prediction, WSSDLPredictor
from .results import write_predictions
from .run import predict_files
from .visualize import draw_prediction

__all__ = ["Diagnosis", "Prediction", "WSSDLPredictor", "diagnose", "draw_prediction", "predict_files",
           "write_predictions"]
