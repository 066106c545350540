"""Evaluation: the COCO evaluator, the inference runner, CLI tasks and the training report.

`tasks` (eval / predict / show_data) and `report` are imported by name where needed, so
importing this package stays light (no matplotlib).
"""
from .coco_evaluator import COCOEvaluator
from .inference import inference_on_dataset
from .predictor import Predictor
from .tables import per_category_table, summary_table

__all__ = ["COCOEvaluator", "Predictor", "inference_on_dataset", "per_category_table", "summary_table"]
