"""Short backbone names for the command line: ``python -m detrun recipe=mask_rcnn_R50 model/backbone=R101``.

Each name maps to a node for the model's bottom-up network (the ResNet under the FPN, or the
backbone itself in a model without FPN). Choosing a name merges its node into the recipe's
when both build the same class, so ``R101`` changes the depth and keeps the recipe's norm,
``freeze_at`` and stride placement; a node of another class (your own backbone) replaces it
(the FPN reads its ``output_shape()``, unless the recipe sets ``model.backbone.in_features``).
``timm:NAME`` (``model/backbone=timm:convnext_tiny``) builds any timm model as a `TimmBackbone`
(``pip install 'detrun[timm]'``) with the outputs the replaced node had (``res2``-``res5``, or
its ``out_features``), randomly initialised: give weights with
``model.backbone.bottom_up.pretrained_file=PATH`` (a timm state dict).
Register your own in a recipe file: ``BACKBONES["tiny"] = L(MyBackbone)(width=32)``, then
``python -m detrun recipe=my_recipe.py model/backbone=tiny``. This module is imported once and
shared by every recipe load (`detrun.config.recipes.REGISTRY_MODULES`), so the name stays
registered in the process from then on: add names, don't edit the entries in place.
"""
from omegaconf import DictConfig, OmegaConf

from detrun.config import L
from detrun.errors import UserError
from detrun.modeling import ResNet, TimmBackbone

BACKBONES = {f"R{depth}": L(ResNet)(depth=depth) for depth in (18, 34, 50, 101, 152)}
TIMM_PREFIX = "timm:"


class UnknownBackboneError(UserError, KeyError):
    """A backbone short name that isn't registered."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def choose_backbone(cfg: DictConfig, name: str) -> DictConfig:
    """Put backbone `name` (a key of `BACKBONES`) into ``cfg.model``, in place; returns `cfg`.

    Raises:
        UnknownBackboneError: `name` isn't registered (the message lists the names that are).
    """
    parent = cfg.model.backbone if "bottom_up" in cfg.model.backbone else cfg.model
    key = "bottom_up" if parent is not cfg.model else "backbone"
    if name.startswith(TIMM_PREFIX) and name not in BACKBONES:
        out_features = parent[key].get("out_features")
        parent[key] = L(TimmBackbone)(model_name=name[len(TIMM_PREFIX):],
                                      out_features=list(out_features) if out_features is not None else None)
        return cfg
    if name not in BACKBONES:
        raise UnknownBackboneError(f"unknown backbone '{name}'; registered names: {', '.join(BACKBONES)} "
                                   "(add one in your recipe file: from detrun.recipes.common.models.backbones "
                                   "import BACKBONES; BACKBONES['name'] = L(MyBackbone)(...)), or "
                                   "timm:MODEL for a timm model (timm:convnext_tiny)")
    current, chosen = parent[key], BACKBONES[name]
    if current.get("_target_") == chosen["_target_"]:
        parent[key] = OmegaConf.merge(current, chosen)
    else:
        parent[key] = OmegaConf.create(OmegaConf.to_container(chosen))
    return cfg
