"""ViTDet Mask R-CNN for the synthetic shapes set: a small plain ViT trained from scratch on a CPU.

`mask_rcnn_vitdet_b`'s architecture shrunk for 192 px images of 16-64 px objects: a ViT of width
192, depth 6 and 3 heads on 16 px patches (a 12 x 12 grid; windows of 6 except the global blocks 2
and 5; relative position embeddings), the simple feature pyramid at 64 channels (p2-p6, every image
padded to 192 x 192), LayerNorm in the pyramid and heads, a 4conv1fc box head of 64-channel convs;
anchors and proposal counts as `shapes_mask_rcnn`, but 64 sampled ROIs per image instead of 128
(the four box-head convs over every sampled ROI took a third of a training step). AdamW with
ViTDet's parameter groups (no weight decay on norms and position embeddings), cosine schedule.
"""
from .common.data.shapes import dataloader
from .common.evaluation import evaluator
from .common.models.mask_rcnn_vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedules import cosine as lr_scheduler
from .common.trainer import trainer

model.backbone.net.update(
    img_size=192,
    patch_size=16,
    embed_dim=192,
    depth=6,
    num_heads=3,
    drop_path_rate=0.0,
    window_size=6,
    window_block_indexes=[0, 1, 3, 4],  # 2 and 5 attend globally
    pretrain_img_size=192,  # no pretraining: position embeddings of the training grid
    pretrain_use_cls_token=False,
)
model.backbone.out_channels = 64
model.backbone.square_pad = 192

model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
model.proposal_generator.batch_size_per_image = 128
model.proposal_generator.pre_nms_topk = [1000, 500]
model.proposal_generator.post_nms_topk = [500, 250]

model.roi_heads.num_classes = 3
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_head.update(conv_dims=[64, 64, 64, 64], fc_dims=[256])
model.roi_heads.box_predictor.test_topk_per_image = 50
model.roi_heads.branches.mask.head.conv_dims = [64, 64, 64, 64, 64]

dataloader.train.mapper.image_format = "${model.input_format}"

optimizer.lr = 5e-4
optimizer.weight_decay = 0.05
optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}
lr_scheduler.warmup_length = 0.1
trainer.max_iter = 1000
trainer.checkpoint_period = 500
