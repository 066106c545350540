"""The evaluator node: COCO AP on the validation set.

The engine adds ``output_dir`` at instantiation (``instantiate(cfg.evaluator, output_dir=...)``);
change the data set or backend by assignment or on the command line
(``evaluator.dataset_name=my_val evaluator.backend=pycocotools``).
"""
from detrun.config import L
from detrun.evaluation import COCOEvaluator

evaluator = L(COCOEvaluator)(dataset_name="shapes_val", backend="auto")
