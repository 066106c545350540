"""Parameter groups as a recipe node: layer-wise lr decay, overrides, and existing recipes unchanged."""
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from detrun.config import L, get_recipe, instantiate, list_recipes, load, save
from detrun.engine.optim import build_optimizer, build_param_groups, is_norm, param_groups, vit_layer_decay
from detrun.modeling import LastLevelMaxPool, SimpleFeaturePyramid, ViT

DEPTH = 12


def vit_detector() -> nn.Module:
    """A 12-block ViT under a pyramid as ``backbone``, and a head outside it."""
    net = ViT(img_size=64, patch_size=16, embed_dim=16, depth=DEPTH, num_heads=2, window_size=2,
              window_block_indexes=[0, 1, 3, 4, 6, 7, 9, 10], pretrain_img_size=64)
    return nn.ModuleDict({"backbone": SimpleFeaturePyramid(net=net, out_channels=8, top_block=LastLevelMaxPool()),
                          "roi_heads": nn.Linear(8, 4)})


def factors_and_decays(groups: list[dict], model: nn.Module) -> dict[str, tuple[float, float | None]]:
    by_id = {id(p): (g.get("lr_factor", 1.0), g.get("weight_decay")) for g in groups for p in g["params"]}
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def test_layer_decay_factor_of_every_block_and_the_embeddings():
    model = vit_detector()
    groups = param_groups(model, weight_decay_norm=0.0, weight_decay_bias=None,
                          overrides={"pos_embed": {"weight_decay": 0.0}},
                          lr_factor=vit_layer_decay(num_layers=DEPTH, rate=0.7))
    got = factors_and_decays(groups, model)
    for i in range(DEPTH):
        block = {name: v for name, v in got.items() if name.startswith(f"backbone.net.blocks.{i}.")}
        assert block and all(f == pytest.approx(0.7 ** (DEPTH - i)) for f, _ in block.values()), i
    for name in ("backbone.net.patch_embed.proj.weight", "backbone.net.patch_embed.proj.bias", "backbone.net.pos_embed"):
        assert got[name][0] == pytest.approx(0.7 ** (DEPTH + 1)), name
    rest = {name: f for name, (f, _) in got.items() if not name.startswith("backbone.net.")}
    assert rest and set(rest.values()) == {1.0}  # pyramid and heads at the full lr
    # Weight decay: none on norms and pos_embed, the optimizer's on biases, rel-pos tables and weights.
    assert got["backbone.net.pos_embed"][1] == 0.0
    assert got["backbone.net.blocks.3.norm1.weight"][1] == 0.0 and got["backbone.simfp_2.4.norm.bias"][1] == 0.0
    for name in ("backbone.net.blocks.3.attn.qkv.bias", "backbone.net.blocks.2.attn.rel_pos_h", "roi_heads.weight"):
        assert got[name][1] is None, name


def test_groups_start_at_the_optimizers_lr_times_their_factor():
    model = vit_detector()
    cfg = OmegaConf.create({
        "optimizer": L(torch.optim.AdamW)(
            params=L(param_groups)(weight_decay_norm=0.0, weight_decay_bias=None,
                                   overrides={"pos_embed": {"weight_decay": 0.0}},
                                   lr_factor=L(vit_layer_decay)(num_layers=DEPTH, rate=0.7)),
            lr=1e-4, weight_decay=0.1),
        "trainer": {"weight_decay_norm": 0.5, "weight_decay_bias": 0.5},  # not used: the node decides
    })
    optimizer = build_optimizer(model, cfg.optimizer, cfg.trainer)
    lrs = {id(p): (g["lr"], g["initial_lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    head = lrs[id(model["roi_heads"].weight)]
    assert head == (pytest.approx(1e-4), pytest.approx(1e-4), 0.1)
    block0 = lrs[id(model["backbone"].net.blocks[0].attn.qkv.weight)]
    assert block0[:2] == (pytest.approx(1e-4 * 0.7 ** 12), pytest.approx(1e-4 * 0.7 ** 12))
    assert lrs[id(model["backbone"].net.pos_embed)][2] == 0.0
    assert 0.5 not in {v[2] for v in lrs.values()}


def test_the_decay_node_round_trips_through_yaml(tmp_path):
    cfg = get_recipe("mask_rcnn_vitdet_b")
    assert cfg.optimizer.params.lr_factor._target_ == "detrun.engine.optim.vit_layer_decay"
    save(cfg, tmp_path / "recipe.yaml")
    loaded = load(tmp_path / "recipe.yaml")
    assert loaded == cfg
    decay = instantiate(loaded.optimizer.params.lr_factor)
    assert (decay.num_layers, decay.rate) == (12, 0.7)
    assert decay("backbone.net.blocks.11.mlp.fc1.weight") == pytest.approx(0.7)


def test_mistakes_in_overrides_and_decay_are_named():
    model = vit_detector()
    with pytest.raises(ValueError, match=r"overrides name \['pos_embd'\]"):
        param_groups(model, overrides={"pos_embd": {"weight_decay": 0.0}})
    with pytest.raises(ValueError, match=r"overrides\['pos_embed'\] sets \['lr'\]"):
        param_groups(model, overrides={"pos_embed": {"lr": 0.0}})
    with pytest.raises(ValueError, match="set num_layers to the ViT's depth"):
        param_groups(model, lr_factor=vit_layer_decay(num_layers=6, rate=0.7))


def old_param_groups(model: nn.Module, weight_decay_norm, weight_decay_bias) -> list[dict]:
    """`param_groups` as it was before parameter groups became a recipe node (the reference)."""
    groups, seen = {}, set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            decay = weight_decay_norm if is_norm(module) else weight_decay_bias if name == "bias" else None
            groups.setdefault(decay, []).append(param)
    return [{"params": p} if d is None else {"params": p, "weight_decay": d} for d, p in groups.items()]


@pytest.mark.parametrize("name", [n for n in list_recipes() if "params" not in get_recipe(n).optimizer])
def test_existing_recipes_param_groups_are_unchanged(name):
    cfg = get_recipe(name)
    cfg.model.weights = None
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    new = build_param_groups(model, cfg.optimizer, cfg.trainer)
    old = old_param_groups(model, cfg.trainer.weight_decay_norm, cfg.trainer.weight_decay_bias)
    assert [{**g, "params": [id(p) for p in g["params"]]} for g in new] == \
        [{**g, "params": [id(p) for p in g["params"]]} for g in old]
    optimizer = build_optimizer(model, cfg.optimizer, cfg.trainer)
    assert all(g["initial_lr"] == g["lr"] == cfg.optimizer.lr for g in optimizer.param_groups)
