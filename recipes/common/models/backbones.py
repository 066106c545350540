"""Short backbone names for the command line: ``python -m detrun recipe=mask_rcnn_R50 model/backbone=R101``.

Each name maps to a node for the model's bottom-up network (the ResNet under the FPN, or the
backbone itself in a model without FPN). Choosing a name merges its node into the recipe's
when both build the same class, so ``R101`` changes the depth and keeps the recipe's norm,
``freeze_at`` and stride placement; a node of another class (your own backbone) replaces it
(the FPN reads its ``output_shape()``, unless the recipe sets ``model.backbone.in_features``).
Register your own in a recipe file: ``BACKBONES["tiny"] = L(MyBackbone)(width=32)``, then
``python -m detrun recipe=my_recipe.py model/backbone=tiny``. This module is imported once and
shared by every recipe load (`detrun.config.recipes.REGISTRY_MODULES`), so the name stays
registered in the process from then on: add names, don't edit the entries in place.
"""
from omegaconf import DictConfig, OmegaConf

from detrun.config import L
from detrun.errors import UserError
from detrun.modeling import ResNet

BACKBONES = {f"R{depth}": L(ResNet)(depth=depth) for depth in (18, 34, 50, 101, 152)}


class UnknownBackboneError(UserError, KeyError):
    """A backbone short name that isn't registered."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def choose_backbone(cfg: DictConfig, name: str) -> DictConfig:
    """Put backbone `name` (a key of `BACKBONES`) into ``cfg.model``, in place; returns `cfg`.

    Raises:
        UnknownBackboneError: `name` isn't registered (the message lists the names that are).
    """
    if name not in BACKBONES:
        raise UnknownBackboneError(f"unknown backbone '{name}'; registered names: {', '.join(BACKBONES)} "
                                   "(add one in your recipe file: from detrun.recipes.common.models.backbones "
                                   "import BACKBONES; BACKBONES['name'] = L(MyBackbone)(...))")
    parent = cfg.model.backbone if "bottom_up" in cfg.model.backbone else cfg.model
    key = "bottom_up" if parent is not cfg.model else "backbone"
    current, chosen = parent[key], BACKBONES[name]
    if current.get("_target_") == chosen["_target_"]:
        parent[key] = OmegaConf.merge(current, chosen)
    else:
        parent[key] = OmegaConf.create(OmegaConf.to_container(chosen))
    return cfg
