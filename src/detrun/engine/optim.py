"""Optimizer parameter groups: which parameters get weight decay, and at what learning rate.

Decaying a normalisation layer's scale and shift, or any bias, pulls them toward zero
without regularising the function in a useful way, so by default they get none (as in
Detectron2's ``get_default_optimizer_params`` and "Bag of Tricks", He et al. 2019, §3.1).

A recipe may describe the groups as a node, which the engine builds with ``model=`` filled in::

    optimizer.params = L(param_groups)(
        weight_decay_norm=0.0,
        overrides={"pos_embed": {"weight_decay": 0.0}},
        lr_factor=L(vit_layer_decay)(num_layers=12, rate=0.7),
    )

Every factory here is an importable callable, so such a recipe dumps to YAML and loads back
(Detectron2 writes the decay as a ``functools.partial``, which can't be saved).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from omegaconf import DictConfig
from torch import nn

from detrun.config import instantiate

# Module types whose parameters are normalisation scale/shift. Names ending in "Norm" or
# "Norm2d" catch the model code's own layers (FrozenBatchNorm2d, channels-first LayerNorm).
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
              nn.modules.instancenorm._InstanceNorm)
# What an `overrides` entry may set for the parameters it names.
OVERRIDE_KEYS = ("weight_decay", "lr_factor")


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES) or type(module).__name__.endswith(("Norm", "Norm2d", "Norm1d"))


def param_groups(model: nn.Module, *, weight_decay_norm: float | None = 0.0, weight_decay_bias: float | None = 0.0,
                 overrides: Mapping[str, Mapping[str, float]] | None = None,
                 lr_factor: Callable[[str], float] | None = None) -> list[dict]:
    """Split the trainable parameters of `model` into optimizer groups by weight decay and lr factor.

    Args:
        model: the model; parameters with ``requires_grad=False`` are left out, and a
            parameter shared by several modules is listed once (under its first name).
        weight_decay_norm: weight decay of normalisation-layer parameters; None uses the
            optimizer's own ``weight_decay``.
        weight_decay_bias: weight decay of the other biases; None uses the optimizer's.
        overrides: parameter name -> settings, applied last. A name matches a parameter's own
            name (``"pos_embed"``, ``"bias"``, as in Detectron2) or its full dotted name
            (``"backbone.net.pos_embed"``); settings are ``weight_decay`` (None: the optimizer's)
            and ``lr_factor``.
        lr_factor: full parameter name -> multiplier of the learning rate (e.g. `vit_layer_decay`).

    Returns:
        ``[{"params": [...]}, {"params": [...], "weight_decay": x, "lr_factor": f}, ...]`` for
        ``torch.optim.X(groups, ...)``: one group per distinct (weight decay, lr factor), in order
        of first appearance, empty groups dropped, parameters in ``model.named_parameters()``
        order within each group. ``weight_decay`` is absent where the optimizer's applies, and
        ``lr_factor`` where it is 1; the engine starts each group at the optimizer's lr times
        its ``lr_factor`` (`initial_lrs`).
    """
    overrides = {str(k): dict(v) for k, v in (overrides or {}).items()}
    for name, settings in overrides.items():
        unknown = sorted(set(settings) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(f"param_groups overrides['{name}'] sets {unknown}; it may set {list(OVERRIDE_KEYS)}")
    groups: dict[tuple[float | None, float], list] = {}
    seen = set()
    matched = set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{name}" if module_name else name
            if is_norm(module):
                decay = weight_decay_norm
            elif name == "bias":
                decay = weight_decay_bias
            else:
                decay = None
            factor = 1.0 if lr_factor is None else float(lr_factor(full_name))
            for key in (name, full_name):
                if key in overrides:
                    matched.add(key)
                    decay = overrides[key].get("weight_decay", decay)
                    factor = float(overrides[key].get("lr_factor", factor))
            groups.setdefault((decay, factor), []).append(param)
    unused = sorted(set(overrides) - matched)
    if unused:
        raise ValueError(f"param_groups overrides name {unused}, which no trainable parameter of the model is called "
                         "(give a parameter's own name, e.g. 'pos_embed', or its full name)")
    result = []
    for (decay, factor), params in groups.items():
        group = {"params": params}
        if decay is not None:
            group["weight_decay"] = decay
        if factor != 1.0:
            group["lr_factor"] = factor
        result.append(group)
    return result


class LayerDecay:
    """Layer-wise learning-rate decay of a ViT (BEiT, Bao et al. 2021; ViTDet): full parameter
    name -> ``rate ** (num_layers + 1 - layer_id)``.

    layer_id is 0 for the patch and position embeddings (``{prefix}*.patch_embed.*``,
    ``*.pos_embed``, ``*.cls_token``), i + 1 for block i (``*.blocks.{i}.*``), and num_layers + 1
    (factor 1) for everything else: the pyramid, the heads, parameters outside `prefix`.
    Detectron2's ``get_vit_lr_decay_rate``, as an object a recipe node builds.
    """

    def __init__(self, *, num_layers: int, rate: float, prefix: str = "backbone."):
        if num_layers < 1 or not 0.0 < rate <= 1.0:
            raise ValueError(f"vit_layer_decay needs num_layers >= 1 and 0 < rate <= 1, got {num_layers}, {rate}")
        self.num_layers, self.rate, self.prefix = num_layers, rate, prefix
        self._block = re.compile(r"(?:^|\.)blocks\.(\d+)\.")

    def layer_id(self, name: str) -> int:
        """0 (embeddings), i + 1 (block i) or num_layers + 1 (not in the ViT) for a full parameter name."""
        if not name.startswith(self.prefix):
            return self.num_layers + 1
        rest = "." + name[len(self.prefix):]
        if ".patch_embed." in rest or rest.endswith((".pos_embed", ".cls_token")):
            return 0
        match = self._block.search(rest)
        if match:
            block = int(match[1])
            if block >= self.num_layers:
                raise ValueError(f"vit_layer_decay(num_layers={self.num_layers}) met parameter '{name}' of block "
                                 f"{block}: set num_layers to the ViT's depth")
            return block + 1
        return self.num_layers + 1

    def __call__(self, name: str) -> float:
        return self.rate ** (self.num_layers + 1 - self.layer_id(name))

    def __repr__(self) -> str:
        return f"LayerDecay(num_layers={self.num_layers}, rate={self.rate}, prefix={self.prefix!r})"


def vit_layer_decay(*, num_layers: int, rate: float, prefix: str = "backbone.") -> LayerDecay:
    """The `lr_factor` of a ViT backbone with `num_layers` blocks under `prefix` (see `LayerDecay`).

    ``L(vit_layer_decay)(num_layers=12, rate=0.7)`` in a recipe: block i gets 0.7 ** (12 - i),
    the embeddings 0.7 ** 13, the rest of the detector 1.
    """
    return LayerDecay(num_layers=num_layers, rate=rate, prefix=prefix)


def build_param_groups(model: nn.Module, optimizer_cfg: DictConfig, trainer_cfg: DictConfig) -> list[dict]:
    """The groups the engine gives ``optimizer_cfg``: its ``params`` node built with ``model=model``
    when the recipe has one, else `param_groups` with the trainer's ``weight_decay_norm`` and
    ``weight_decay_bias``."""
    node = optimizer_cfg.get("params") if isinstance(optimizer_cfg, DictConfig) else None
    if node is None:
        return param_groups(model, weight_decay_norm=trainer_cfg.weight_decay_norm,
                            weight_decay_bias=trainer_cfg.weight_decay_bias)
    return instantiate(node, model=model)


def build_optimizer(model: nn.Module, optimizer_cfg: DictConfig, trainer_cfg: DictConfig):
    """Instantiate ``optimizer_cfg`` on `build_param_groups`' groups, each group's ``lr`` set to the
    optimizer's lr times its ``lr_factor``, and ``initial_lr`` (what the lr schedule multiplies) to that."""
    groups = build_param_groups(model, optimizer_cfg, trainer_cfg)
    optimizer = instantiate(optimizer_cfg, params=groups)  # the params node itself is not built again
    initial_lrs(optimizer)
    return optimizer


def initial_lrs(optimizer) -> None:
    """Set each group's ``initial_lr`` (kept if present, e.g. after loading a state dict) to its
    ``lr`` times its ``lr_factor``, and its ``lr`` to that."""
    for group in optimizer.param_groups:
        if "initial_lr" not in group:
            group["initial_lr"] = group["lr"] * group.get("lr_factor", 1.0)
            group["lr"] = group["initial_lr"]
