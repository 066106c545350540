"""Fixtures: the synthetic COCO set of `evaltest_data`, registered twice (JSON-backed and list of dicts)."""
from __future__ import annotations

import functools
import json

import pytest
from evaltest_data import CLASS_NAMES, KPT_SIGMAS, make_coco

from detrun.data import DatasetCatalog, MetadataCatalog, load_coco_json, register_coco_instances


@pytest.fixture(scope="session")
def coco_dict() -> dict:
    return make_coco()


@pytest.fixture(scope="session")
def coco_json(tmp_path_factory, coco_dict) -> str:
    path = tmp_path_factory.mktemp("coco") / "gt.json"
    path.write_text(json.dumps(coco_dict))
    return str(path)


@pytest.fixture(scope="session")
def records(coco_json) -> list[dict]:
    """The records `detrun.data` loads from the JSON (what a loader feeds the model)."""
    return load_coco_json(coco_json, image_root=str(coco_json).rsplit("/", 1)[0])


def _unregister(name: str) -> None:
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


@pytest.fixture
def coco_dataset(coco_json, request):
    """Name of the synthetic set registered from its COCO JSON."""
    name = f"evaltest_json_{request.node.name}"
    register_coco_instances(name, coco_json, str(coco_json).rsplit("/", 1)[0],
                            metadata={"keypoint_oks_sigmas": KPT_SIGMAS})
    yield name
    _unregister(name)


@pytest.fixture
def list_dataset(records, request):
    """Name of the same records registered as a plain list of dicts (no JSON)."""
    name = f"evaltest_list_{request.node.name}"
    DatasetCatalog.register(name, functools.partial(list, records))
    MetadataCatalog.get(name).set(thing_classes=CLASS_NAMES, keypoint_oks_sigmas=KPT_SIGMAS)
    yield name
    _unregister(name)
