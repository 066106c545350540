"""Evaluation: the COCO evaluator, the inference runner, CLI tasks and the training report.

`tasks` (eval / predict / show_data) and `report` are imported by name where needed, so
importing this package stays light (no matplotlib).
"""
from .cityscapes_evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
from .coco_evaluator import COCOEvaluator
from .evaluators import DatasetEvaluators, build_evaluator
from .inference import inference_on_dataset
from .lvis_evaluation import LVISEvaluator
from .panoptic_evaluation import COCOPanopticEvaluator
from .pascal_voc_evaluation import PascalVOCDetectionEvaluator
from .predictor import Predictor
from .sem_seg_evaluation import SemSegEvaluator
from .tables import per_category_table, summary_table

__all__ = ["CityscapesInstanceEvaluator", "CityscapesSemSegEvaluator",
           "COCOEvaluator", "COCOPanopticEvaluator", "DatasetEvaluators", "LVISEvaluator", "Predictor",
           "SemSegEvaluator", "build_evaluator", "inference_on_dataset", "per_category_table", "summary_table"]
