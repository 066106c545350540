"""``torch.compile`` of a detector's dense parts: ``trainer.compile=true`` (training) and
``trainer.inference_compile=true`` (task=eval, task=predict, `Predictor`).

Both keys sit in the trainer node, beside ``trainer.amp`` / ``trainer.inference_amp``: a key in
the model node would reach the model's constructor (``instantiate(cfg.model)``, the command
line's argument check), which has no such argument.

The backbone and every head (a submodule whose attribute name ends in ``head``: the RPN head, the
ROI box / mask / keypoint heads, RetinaNet's head, the semantic head; each element of a
``ModuleList`` of heads, as Cascade R-CNN's stages) are compiled in place with
`nn.Module.compile`, so parameter names and checkpoints are unchanged. Proposal selection, NMS,
box decoding and mask pasting stay eager: they work on data-dependent shapes, where compiled
graphs would break or recompile for every image, and cost little next to the convolutions.
"""
from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf
from torch import nn

from detrun.config import instantiate
from detrun.errors import UserError

logger = logging.getLogger(__name__)

# The config keys that ask for compiled inference and training.
INFERENCE_KEY = "trainer.inference_compile"
TRAINING_KEY = "trainer.compile"
# What the keys take: false / true (inductor) or a torch.compile backend name.
_OFF, _ON = (False, "false", "off", None), (True, "true", "on")


def compile_targets(model: nn.Module) -> dict[str, nn.Module]:
    """The submodules `compile_model` compiles, by name: ``backbone`` and every ``*head``
    (a ModuleList of heads contributes its elements)."""
    targets = {"backbone": model.backbone} if isinstance(getattr(model, "backbone", None), nn.Module) else {}
    for name, module in model.named_modules():
        if not name.rpartition(".")[2].endswith("head") or name.startswith("backbone"):
            continue
        if isinstance(module, nn.ModuleList):
            targets.update({f"{name}.{i}": m for i, m in enumerate(module)})
        else:
            targets[name] = module
    return targets


def compile_model(model: nn.Module, backend: str = "inductor", dynamic: bool | None = None) -> nn.Module:
    """Compile `model`'s backbone and heads in place (`compile_targets`) with `backend` and
    returns `model`. Outputs equal eager's up to floating-point reordering; the first calls (and
    calls with new image or proposal counts, until shapes are marked dynamic) pay for compilation."""
    targets = compile_targets(model)
    if not targets:
        raise UserError(f"{type(model).__name__} has no backbone or heads to compile: set {INFERENCE_KEY}=false")
    for module in targets.values():
        module.compile(backend=backend, dynamic=dynamic)
    logger.info("torch.compile (%s): %s", backend, ", ".join(targets))
    return model


def compile_backend(cfg: DictConfig, key: str) -> str | None:
    """The torch.compile backend that ``cfg``'s `key` asks for: None (off: absent, false), "inductor"
    (true) or the backend named (e.g. ``aot_eager``). Anything else is a UserError naming the key."""
    value = OmegaConf.select(cfg, key, default=None)
    if isinstance(value, str):
        value = value.strip().lower()
    if value in _OFF:
        return None
    if value in _ON:
        return "inductor"
    import torch._dynamo

    if isinstance(value, str) and value in torch._dynamo.list_backends(exclude_tags=()):
        return value
    raise UserError(f"{key}={value!r}: use true, false or a torch.compile backend "
                    f"({', '.join(torch._dynamo.list_backends())})")


def build_model(cfg: DictConfig, key: str | None = INFERENCE_KEY, **overrides) -> nn.Module:
    """``instantiate(cfg.model)`` (`overrides` as instantiate's), compiled when `key` asks for it
    (`compile_backend`; None: never)."""
    backend = compile_backend(cfg, key) if key else None
    model = instantiate(cfg.model, **overrides)
    return compile_model(model, backend) if backend else model
