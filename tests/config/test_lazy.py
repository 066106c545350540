import traceback

import pytest
import torch
from omegaconf import OmegaConf

from detrun.config import InstantiationError, L, instantiate, load, save
from detrun.config.lazy import check_targets, locate
from detrun.errors import UserError


def make_linear(in_features: int, out_features: int) -> torch.nn.Linear:
    return torch.nn.Linear(in_features, out_features)


class Head(torch.nn.Module):
    """A module with a bug (IndexError) for ``num_layers > 1`` and value checking."""

    def __init__(self, *, in_channels: int, num_layers: int = 1):
        super().__init__()
        if in_channels <= 0:
            raise ValueError(f"Head in_channels must be positive, got {in_channels}")
        self.layers = [in_channels][num_layers - 1]


class BadWeightsError(UserError):
    pass


def load_weights(path: str) -> None:
    raise BadWeightsError(f"{path} is not a checkpoint")


def test_lazycall_builds_nested_nodes_with_interpolation():
    node = L(torch.nn.Linear)(in_features=5, out_features="${..num_classes}")
    cfg = OmegaConf.create({"num_classes": 3, "head": node})
    head = instantiate(cfg.head)
    assert isinstance(head, torch.nn.Linear)
    assert (head.in_features, head.out_features) == (5, 3)


def test_nested_nodes_lists_and_overrides():
    node = L(dict)(
        layers=[L(make_linear)(in_features=2, out_features=3), L(make_linear)(in_features=3, out_features=1)],
        plain={"a": 1, "b": [1, 2]},
    )
    built = instantiate(node, extra="passed as is")
    assert [m.out_features for m in built["layers"]] == [3, 1]
    assert built["plain"] == {"a": 1, "b": [1, 2]}
    assert built["extra"] == "passed as is"


def test_target_is_stored_as_shortest_import_path():
    assert L(torch.optim.SGD)(lr=0.1)._target_ == "torch.optim.SGD"
    assert locate(L(make_linear)()._target_) is make_linear


def test_lambdas_and_local_functions_are_refused():
    def local(x):
        return x

    with pytest.raises(TypeError, match="importable"):
        L(lambda x: x)
    with pytest.raises(TypeError, match="importable"):
        L(local)


def test_bad_target_names_its_config_path():
    cfg = OmegaConf.create({"model": {"backbone": L("torch.nn.NoSuchLayer")(x=1)}})
    with pytest.raises(InstantiationError, match=r"model\.backbone\._target_ = 'torch\.nn\.NoSuchLayer'"):
        instantiate(cfg)
    with pytest.raises(InstantiationError, match=r"model\.backbone\._target_"):
        check_targets(cfg)


def test_unknown_argument_names_the_node_and_suggests_the_closest():
    cfg = OmegaConf.create({"model": {"head": L(torch.nn.Linear)(in_features=2, out_featurs=2)}})
    with pytest.raises(InstantiationError) as info:
        instantiate(cfg.model)
    message = str(info.value)
    assert "building 'model.head' (torch.nn.Linear)" in message
    assert "unknown argument 'out_featurs' (did you mean 'out_features'?)" in message
    assert "accepted: in_features, out_features, bias, device, dtype" in message
    assert "\n" not in message


def test_missing_argument_is_named():
    cfg = OmegaConf.create({"model": {"head": L(Head)()}})
    message = r"^building 'model\.head' \(.*Head\): missing required argument 'in_channels'$"
    with pytest.raises(InstantiationError, match=message):
        instantiate(cfg)


def test_value_errors_and_user_errors_stay_one_line():
    cfg = OmegaConf.create({"model": {"head": L(Head)(in_channels=0)}})
    message = r"^building 'model\.head' \(.*Head\): Head in_channels must be positive, got 0$"
    with pytest.raises(InstantiationError, match=message):
        instantiate(cfg)
    cfg = OmegaConf.create({"weights": L(load_weights)(path="w.txt")})
    message = r"^building 'weights' \(.*load_weights\): w\.txt is not a checkpoint$"
    with pytest.raises(InstantiationError, match=message) as info:
        instantiate(cfg)
    assert isinstance(info.value.__cause__, BadWeightsError)


def test_bugs_propagate_with_their_traceback_and_a_note():
    cfg = OmegaConf.create({"model": {"heads": [L(Head)(in_channels=1, num_layers=2)]}})
    with pytest.raises(IndexError) as info:
        instantiate(cfg.model)
    assert not isinstance(info.value, InstantiationError)
    raising = traceback.extract_tb(info.value.__traceback__)[-1]
    assert (raising.filename, raising.name) == (__file__, "__init__")
    assert info.value.__notes__ == [f"while building 'model.heads[0]' ({Head.__module__}.Head)"]


def test_save_load_round_trip(tmp_path):
    cfg = OmegaConf.create({"n": 2, "m": L(torch.nn.Linear)(in_features="${n}", out_features=1)})
    save(cfg, tmp_path / "c.yaml")
    back = load(tmp_path / "c.yaml")
    assert back == cfg
    assert instantiate(back.m).in_features == 2


def test_check_targets_names_arguments_the_target_does_not_take():
    cfg = OmegaConf.create({"model": {"act": L(torch.nn.ReLU)(inplace=True, depth=50)}})
    message = (r"^'model\.act' \(torch\.nn\.ReLU\): unknown argument 'depth'; accepted: inplace "
               r"\(on the command line, delete each one with '~model\.act\.NAME'\)$")
    with pytest.raises(InstantiationError, match=message):
        check_targets(cfg)
    check_targets(OmegaConf.create({"optimizer": L(torch.optim.SGD)(lr=0.1)}))  # `params` comes at build time
