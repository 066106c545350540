"""inference_on_dataset: modes, AMP, timing, and 2 gloo ranks with disjoint shards == 1 process."""
from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from evaltest_data import KPT_SIGMAS, noisy_outputs
from torch import nn

from detrun.data import DatasetCatalog, register_coco_instances
from detrun.errors import UserError
from detrun.evaluation import COCOEvaluator, inference_on_dataset


class LookupModel(nn.Module):
    """Returns precomputed outputs by image_id; records the modes it was called in."""

    def __init__(self, outputs: dict):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.outputs = outputs
        self.calls = []

    def forward(self, inputs: list[dict]) -> list[dict]:
        y = self.linear(torch.ones(1, 2))  # autocast runs matmuls in the AMP dtype
        self.calls.append((self.training, torch.is_grad_enabled(), y.dtype))
        return [self.outputs[x["image_id"]] for x in inputs]


def batches(records: list[dict], size: int) -> list[list[dict]]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def test_eval_mode_no_grad_amp_and_timing(coco_dataset, records, caplog):
    model = LookupModel(noisy_outputs(records))
    model.train()
    evaluator = COCOEvaluator(coco_dataset, backend="pycocotools", tasks=["bbox"])
    with caplog.at_level(logging.INFO, logger="detrun.evaluation.inference"):
        results = inference_on_dataset(model, batches(records, 1), evaluator, amp="bf16")
    assert 0 < results["bbox"]["AP"] < 100
    assert model.training  # restored
    assert all(not training and not grad and dtype == torch.bfloat16 for training, grad, dtype in model.calls)
    assert any("s/image (excluding 5 warm-up iterations)" in r.message for r in caplog.records)
    assert inference_on_dataset(model, batches(records, 4), None) == {}
    with pytest.raises(UserError, match="amp"):
        inference_on_dataset(model, batches(records, 4), evaluator, amp="fp8")


def _rank_worker(rank: int, init_file: str, json_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        register_coco_instances("evaltest_dist", json_file, json_file.rsplit("/", 1)[0],
                                metadata={"keypoint_oks_sigmas": KPT_SIGMAS})
        records = DatasetCatalog.get("evaltest_dist")
        shard = records[rank::2]
        if rank == 1:
            shard = shard + records[:1]  # padding like a distributed sampler's: repeated on rank 0
        evaluator = COCOEvaluator("evaltest_dist", backend="pycocotools")
        results = inference_on_dataset(LookupModel(noisy_outputs(records)), batches(shard, 2), evaluator)
        with open(f"{out_file}.{rank}", "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process(coco_dataset, coco_json, records, tmp_path):
    single = inference_on_dataset(LookupModel(noisy_outputs(records)), batches(records, 3),
                                  COCOEvaluator(coco_dataset, backend="pycocotools"))
    out_file = str(tmp_path / "results")
    mp.spawn(_rank_worker, args=(str(tmp_path / "pg"), coco_json, out_file), nprocs=2)
    with open(f"{out_file}.1") as f:
        assert json.load(f) == {}  # only rank 0 reports
    with open(f"{out_file}.0") as f:
        distributed = json.load(f)
    assert distributed.keys() == single.keys() == {"bbox", "segm", "keypoints"}
    for task, metrics in single.items():
        for name, value in metrics.items():
            other = distributed[task][name]
            assert (math.isnan(value) and math.isnan(other)) or other == pytest.approx(value, abs=1e-12), (task, name)
