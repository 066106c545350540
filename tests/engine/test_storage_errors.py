"""A full disk or a read-only run directory ends as one line naming the path (exit 2 on the
command line), and the checkpoint already on disk stays readable. (A really read-only run dir
on the command line is a case of tests/bad_input_drill.py.)"""
import errno
import hashlib
import io
import logging
import os
import sys

import pytest
import torch
from engine_toy import toy_recipe, train_toy

import detrun.checkpoint.io
import detrun.utils.events
from detrun.cli.main import check_output_dir, main
from detrun.errors import StorageError
from detrun.utils.events import MetricsWriter


class FailingFile(io.FileIO):
    """A file whose writes fail with `code` after `budget` bytes, as on a disk that fills up."""

    code, budget = errno.ENOSPC, 1000

    def write(self, data):
        if self.tell() + len(data) > self.budget:
            raise OSError(self.code, os.strerror(self.code))
        return super().write(data)


def failing_open(code):
    def open_(path, mode="r", *args, **kwargs):
        file = FailingFile(path, mode.replace("b", "").replace("t", ""))
        file.code = code
        return file if "b" in mode else io.TextIOWrapper(file, write_through=True)
    return open_


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("code, needle", [(errno.ENOSPC, "no space left on the device"),
                                          (errno.EROFS, "the file system is read-only")])
def test_a_checkpoint_write_that_fails_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, code, needle):
    run = train_toy(tmp_path / "run", toy_recipe(max_iter=4, checkpoint_period=2))
    last = run / "checkpoints" / "model_0000004.pth"
    before = _digest(last)
    monkeypatch.setattr(detrun.checkpoint.io, "open", failing_open(code), raising=False)
    with pytest.raises(StorageError) as info:
        train_toy(run, toy_recipe(max_iter=6, checkpoint_period=2, resume=True))
    message = str(info.value)
    assert message.startswith(f"can't write {run / 'checkpoints' / 'model_0000006.pth'}: {needle}"), message
    assert "hydra.run.dir=DIR" in message and "\n" not in message and info.value.errno == code
    assert _digest(last) == before and torch.load(last, weights_only=True)["iteration"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["model_0000002.pth", "model_0000004.pth"]


def test_a_metrics_write_on_a_full_disk_names_metrics_jsonl(tmp_path, monkeypatch):
    monkeypatch.setattr(detrun.utils.events, "open", failing_open(errno.ENOSPC), raising=False)
    writer = MetricsWriter(tmp_path, tensorboard=False)
    with pytest.raises(StorageError, match=f"can't write {tmp_path / 'metrics.jsonl'}: no space left"):
        for iteration in range(100):
            writer.write(iteration, {"loss": 1.0})


def test_the_command_line_ends_a_full_disk_with_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "toy_train.py").write_text(
        "from engine_toy import toy_recipe\n\n_cfg = toy_recipe(max_iter=2, checkpoint_period=2)\n"
        "model, dataloader, optimizer, lr_scheduler, trainer = (\n"
        "    _cfg.model, _cfg.dataloader, _cfg.optimizer, _cfg.lr_scheduler, _cfg.trainer)\n")
    monkeypatch.setattr(detrun.checkpoint.io, "open", failing_open(errno.ENOSPC), raising=False)
    monkeypatch.setattr(sys, "argv", ["detrun"])  # main() hands Hydra its argv there
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    handlers = list(logging.getLogger().handlers)
    try:
        with pytest.raises(SystemExit) as info:
            main([f"recipe={tmp_path / 'toy_train.py'}", f"hydra.run.dir={tmp_path / 'run'}"])
    finally:  # Hydra set up logging into the run dir for this in-process run
        for handler in set(logging.getLogger().handlers) - set(handlers):
            logging.getLogger().removeHandler(handler)
            handler.close()
    err = capsys.readouterr().err
    assert info.value.code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: can't write {tmp_path / 'run' / 'checkpoints' / 'model_0000002.pth'}: "
                                "no space left on the device"), err
    assert "Traceback" not in err


def test_a_read_only_output_folder_is_refused_before_hydra_writes_there(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: os.fspath(path) != str(tmp_path))
    with pytest.raises(StorageError, match=f"can't write into {tmp_path} \\(hydra.run.dir={tmp_path}/run\\)"):
        check_output_dir([f"hydra.run.dir={tmp_path}/run"])
    with pytest.raises(StorageError, match="hydra.sweep.dir"):
        check_output_dir(["-m", f"hydra.sweep.dir={tmp_path}/" + "${now:%H}"])
    check_output_dir(["--cfg", "job", f"hydra.run.dir={tmp_path}/run"])  # writes nothing: no check
