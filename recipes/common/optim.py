"""Optimizer nodes. The engine passes ``params`` (groups from `detrun.engine.optim.param_groups`);
recipes take one by import: ``from ..common.optim import SGD as optimizer``."""
import torch

from detrun.config import L

# Detectron2's defaults for a total batch of 16 images.
SGD = L(torch.optim.SGD)(lr=0.02, momentum=0.9, weight_decay=1e-4)

AdamW = L(torch.optim.AdamW)(lr=1e-4, betas=[0.9, 0.999], weight_decay=0.1)
