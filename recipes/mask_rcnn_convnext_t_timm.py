"""Mask R-CNN with timm's ConvNeXt-T under the FPN, on COCO, Detectron2's 1x schedule with AdamW.

`mask_rcnn_fpn` with its ResNet replaced by ``TimmBackbone(model_name="convnext_tiny")`` (outputs
res2-res5 of 96-768 channels at strides 4-32, which the FPN reads from ``output_shape()``),
RGB input with ImageNet statistics, drop path 0.1, and AdamW (lr 1e-4, weight decay 0.05,
none on norms and biases) as in ConvNeXt's detection recipes. Needs ``pip install 'detrun[timm]'``.

Start from timm's ImageNet ConvNeXt-T, saved as a state dict
(``torch.save(timm.create_model("convnext_tiny", pretrained=True).state_dict(), path)`` where
downloads work): ``model.backbone.bottom_up.pretrained_file=/path/to/convnext_tiny.pth``.
"""
from detrun.config import L
from detrun.modeling import TimmBackbone

from .common.data.coco import dataloader
from .common.evaluation import evaluator
from .common.models.mask_rcnn_fpn import model
from .common.optim import AdamW as optimizer
from .common.schedules import multistep as lr_scheduler
from .common.trainer import trainer

model.backbone.bottom_up = L(TimmBackbone)(
    model_name="convnext_tiny",
    out_features=["res2", "res3", "res4", "res5"],
    pretrained_file=None,
    freeze_at=0,
    model_args={"drop_path_rate": 0.1},
)
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"

dataloader.train.mapper.image_format = "${model.input_format}"
evaluator.dataset_name = "coco_2017_val"

optimizer.lr = 1e-4
optimizer.weight_decay = 0.05
optimizer.params.weight_decay_bias = 0.0
trainer.max_iter = 90000
trainer.checkpoint_period = 5000
