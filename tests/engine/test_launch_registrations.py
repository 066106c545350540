"""Data sets a recipe registers in the launcher process exist in the processes `launch` spawns."""
import json
from pathlib import Path

from omegaconf import OmegaConf

from detrun.data import DatasetCatalog, MetadataCatalog
from detrun.engine.launch import launch


def records_of_my_set() -> list[dict]:
    return [{"file_name": "a.png", "height": 4, "width": 4, "image_id": 1, "annotations": []}]


def report_catalog(cfg, run_dir: Path, device) -> None:
    """The spawned worker: write what it sees of `my_set` (its records and metadata) per rank."""
    import torch.distributed as dist

    seen = {"records": DatasetCatalog.get("my_set"), "classes": MetadataCatalog.get("my_set").thing_classes}
    (Path(run_dir) / f"rank{dist.get_rank()}.json").write_text(json.dumps(seen))


def test_spawned_workers_see_the_data_sets_the_launcher_registered(tmp_path):
    DatasetCatalog.register("my_set", records_of_my_set, overwrite=True)
    MetadataCatalog.get("my_set").thing_classes = ["thing"]
    cfg = OmegaConf.create({"trainer": {"gpus": 0, "num_processes": 2, "num_machines": 1, "machine_rank": 0,
                                        "dist_url": "auto"},
                            "dataloader": {"train": {"total_batch_size": 2}}})
    launch(report_catalog, cfg, tmp_path)
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert seen == {"records": records_of_my_set(), "classes": ["thing"]}
