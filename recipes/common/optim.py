"""Optimizer nodes. The engine passes ``params``: the groups of the node's own ``params`` (an
`detrun.engine.optim.param_groups` node, built with ``model=`` filled in) or, without one, groups
by the trainer's ``weight_decay_norm`` / ``weight_decay_bias``. Recipes take one by import:
``from ..common.optim import SGD as optimizer``."""
import torch

from detrun.config import L
from detrun.engine.optim import param_groups

# Detectron2's defaults for a total batch of 16 images.
SGD = L(torch.optim.SGD)(lr=0.02, momentum=0.9, weight_decay=1e-4)

# Detectron2's AdamW (its ViTDet recipes): no weight decay on norms, biases decayed like weights.
# ViT recipes add ``params.lr_factor = L(vit_layer_decay)(...)`` and ``params.overrides``.
AdamW = L(torch.optim.AdamW)(
    params=L(param_groups)(weight_decay_norm=0.0, weight_decay_bias=None),
    lr=1e-4,
    betas=[0.9, 0.999],
    weight_decay=0.1,
)
