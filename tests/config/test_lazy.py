import pytest
import torch
from omegaconf import OmegaConf

from detrun.config import InstantiationError, L, instantiate, load, save
from detrun.config.lazy import check_targets, locate


def make_linear(in_features: int, out_features: int) -> torch.nn.Linear:
    return torch.nn.Linear(in_features, out_features)


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


def test_failing_call_names_the_node():
    cfg = OmegaConf.create({"head": L(torch.nn.Linear)(in_features=2, out_features=2, bogus=1)})
    with pytest.raises(InstantiationError, match=r"building 'head' \(torch\.nn\.Linear\) failed: TypeError"):
        instantiate(cfg)


def test_save_load_round_trip(tmp_path):
    cfg = OmegaConf.create({"n": 2, "m": L(torch.nn.Linear)(in_features="${n}", out_features=1)})
    save(cfg, tmp_path / "c.yaml")
    back = load(tmp_path / "c.yaml")
    assert back == cfg
    assert instantiate(back.m).in_features == 2
