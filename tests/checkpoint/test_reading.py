"""Reading weight files: never executing code from them, and clear errors for bad files."""
import collections
import os
import pickle

import numpy as np
import pytest
import torch

from detrun.checkpoint import CheckpointError, UnsafePickleError, load_weights, read_checkpoint, safe_load_pickle
from detrun.errors import UserError
from detrun.modeling import ResNet

MARKER = "detrun-test-code-ran"


class RunsCode:
    """Unpickling this calls os.system (what a malicious weight file would do)."""

    def __reduce__(self):
        return (os.system, (f"echo {MARKER}",))


class Harmless:
    """Any non-tensor class instance is refused too, not just dangerous ones."""


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_pickle_reads_numpy_weight_files(protocol):
    blob = {"model": collections.OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3), n=np.int64(3)),
            "__author__": "someone", "extra": [1, 2.5, None, "x", b"y", (True,)]}
    loaded = safe_load_pickle(pickle.dumps(blob, protocol=protocol))
    np.testing.assert_array_equal(loaded["model"]["w"], blob["model"]["w"])
    assert loaded["extra"] == blob["extra"] and loaded["__author__"] == "someone"


@pytest.mark.parametrize("payload", [RunsCode(), Harmless(), np.array([1, "a"], dtype=object), {1, 2}])
def test_safe_pickle_refuses_objects(payload, capfd):
    with pytest.raises(UnsafePickleError):
        safe_load_pickle(pickle.dumps({"model": {"w": payload}}))
    assert MARKER not in capfd.readouterr().out


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's _reconstruct, as pickles name it
FOUR_TIB = (2**42,)


class HugeArray:
    """Unpickles as an array of 4 TiB, asked for in one of the ways a pickle can allocate one."""

    def __init__(self, how):
        self.how = how

    def __reduce__(self):
        if self.how == "reconstruct":  # numpy's own path: _reconstruct(ndarray, shape, dtype)
            return _RECONSTRUCT, (np.ndarray, FOUR_TIB, b"b")
        if self.how == "ndarray":  # a direct call numpy.ndarray(shape, dtype)
            return np.ndarray, (FOUR_TIB, "b")
        # _reconstruct of an empty array, then BUILD (__setstate__) with the huge shape
        return _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, FOUR_TIB, np.dtype("O"), False, [])


@pytest.mark.parametrize("how", ["reconstruct", "ndarray", "setstate"])
def test_pkl_asking_for_more_than_the_file_is_refused_before_allocating(tmp_path, how):
    path = tmp_path / "huge.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": HugeArray(how)}}, protocol=2))
    with pytest.raises(CheckpointError, match=r"huge\.pkl.*\(4398046511104,\).*more than the whole file"):
        read_checkpoint(path)


def test_pkl_with_code_is_refused_naming_file(tmp_path, capfd):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {"conv1_w": RunsCode()}}))
    with pytest.raises(CheckpointError, match="evil.pkl.*posix.system|evil.pkl.*os.system") as info:
        read_checkpoint(path)
    assert isinstance(info.value, UserError)
    assert MARKER not in capfd.readouterr().out


def test_torch_file_with_objects_is_refused(tmp_path, capfd):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "hook": RunsCode()}, path)
    with pytest.raises(CheckpointError, match="evil.pth.*not loaded"):
        read_checkpoint(path)
    assert MARKER not in capfd.readouterr().out


def test_torch_files_zip_and_legacy(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "iteration": 7}
    for name, kwargs in [("new.pth", {}), ("legacy.pth", {"_use_new_zipfile_serialization": False})]:
        torch.save(state, tmp_path / name, **kwargs)
        loaded = read_checkpoint(tmp_path / name)
        assert loaded["iteration"] == 7 and torch.equal(loaded["model"]["w"], state["model"]["w"])


def test_missing_empty_and_wrong_type_files(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth.*does not exist"):
        read_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth.*empty"):
        read_checkpoint(tmp_path / "empty.pth")
    (tmp_path / "config.yaml").write_text("model:\n  depth: 50\n")
    with pytest.raises(CheckpointError, match="config.yaml.*neither a PyTorch file"):
        read_checkpoint(tmp_path / "config.yaml")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="array.npy.*not a checkpoint"):
        read_checkpoint(tmp_path / "array.npy")


def test_directories_and_urls_are_named_as_such(tmp_path):
    with pytest.raises(CheckpointError, match=r"model.weights = '.*' is a directory; give the weights file inside"):
        read_checkpoint(tmp_path)
    url = "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"
    with pytest.raises(CheckpointError, match="is a URL; detrun does not download weights"):
        read_checkpoint(url)


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_truncated_files(tmp_path, suffix):
    full = tmp_path / f"full{suffix}"
    model = {"w": torch.randn(64, 64)}
    if suffix == ".pth":
        torch.save({"model": model}, full)
    else:
        full.write_bytes(pickle.dumps({"model": {k: v.numpy() for k, v in model.items()}}, protocol=2))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"cut\\{suffix}.*truncated or corrupt"):
        read_checkpoint(cut)


def test_non_weight_content(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth.*holds a list"):
        load_weights(ResNet(depth=18, width=8), tmp_path / "list.pth")
    torch.save({"iteration": 3, "lr": 0.1}, tmp_path / "notes.pth")
    with pytest.raises(CheckpointError, match="notes.pth.*no tensors"):
        load_weights(ResNet(depth=18, width=8), tmp_path / "notes.pth")
