"""Where built-in data sets live: ``$DETRUN_DATASETS`` (default ``./datasets``), read at each use."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DETRUN_DATASETS"


def datasets_root() -> Path:
    """The folder holding built-in data sets (``coco/``, ``shapes/``)."""
    return Path(os.environ.get(ENV_VAR, "./datasets"))


class DatasetPath(os.PathLike):
    """A path below `datasets_root()`, resolved whenever it is used (``os.fspath``, ``str``), so
    setting DETRUN_DATASETS after import still counts."""

    def __init__(self, relative: str):
        self.relative = relative

    def __fspath__(self) -> str:
        return str(datasets_root() / self.relative)

    __str__ = __fspath__

    def __repr__(self) -> str:
        return f"DatasetPath('$DETRUN_DATASETS/{self.relative}' = '{self}')"

    def __eq__(self, other) -> bool:
        return isinstance(other, (str, os.PathLike)) and os.fspath(self) == os.fspath(other)

    def __hash__(self) -> int:
        return hash(self.relative)


def not_found_hint(what: str, *, folder: str = "coco/",
                   register: str = "detrun.data.register_coco_instances(name, json_file, image_root)") -> str:
    """The sentence appended to a missing-file error of a built-in data set: `folder` is the data
    set's folder under the root, `register` the call that registers a copy elsewhere."""
    return (f" {what} is looked for under ${ENV_VAR} (now '{datasets_root()}'): set {ENV_VAR}=/path/to/datasets "
            f"(the folder that contains {folder}), or register your own copy with {register}.")
