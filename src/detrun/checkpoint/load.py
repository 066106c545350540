"""`load_weights`: put any supported checkpoint into a model, reporting what did and didn't fit."""
from __future__ import annotations

import logging
import re
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from detrun.utils import comm

from .formats import convert_checkpoint
from .reading import CheckpointError, read_checkpoint

logger = logging.getLogger(__name__)

# Training-time running state, not weights: BatchNorm's step counter (absent from frozen norms)
# and RetinaNet's loss normaliser. Other libraries' files lack them; never reported as missing.
_RUNNING_STATE = ("num_batches_tracked", "loss_normalizer")
_EXAMPLES = 5
# The layers that turn features into outputs (class logits, box deltas, mask and keypoint
# logits, RPN objectness and deltas): Fast R-CNN's box_predictor.{cls_score,bbox_pred},
# mask_head.predictor, keypoint_head.score_lowres, RetinaNet's head.{cls_score,bbox_pred},
# rpn_head.{objectness_logits,anchor_deltas}. Left at their initialisation they output noise.
PREDICTOR_LAYERS = ("cls_score", "bbox_pred", "predictor", "score_lowres", "objectness_logits", "anchor_deltas")
# The report of the last `load_weights` into each model, for callers that didn't load it themselves.
_REPORTS: weakref.WeakKeyDictionary[nn.Module, LoadReport] = weakref.WeakKeyDictionary()


def predictor_layer(key: str) -> str | None:
    """The predictor layer (module path, e.g. ``roi_heads.box_predictor.cls_score``) a state-dict
    key belongs to, or None if it belongs to no predictor layer (see PREDICTOR_LAYERS)."""
    module = key.rpartition(".")[0]
    return module if module.rpartition(".")[2] in PREDICTOR_LAYERS else None


@dataclass
class LoadReport:
    """What `load_weights` did.

    Attributes:
        path, source: the file and what it was recognised as.
        loaded: model keys that received a tensor.
        missing: model keys the file has nothing for (they keep their initialisation).
        unexpected: file keys (converted names) the model doesn't have.
        mismatched: (key, file shape, model shape) of same-named tensors of different shapes (not loaded).
        ignored: file keys deliberately skipped (ImageNet classifier, pixel statistics, ...).
        missing_shapes: model shape of each `missing` key.
    """

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing_shapes: dict[str, tuple] = field(default_factory=dict, repr=False)

    def untrained_predictors(self) -> dict[str, tuple[tuple | None, tuple]]:
        """Predictor layers (module path → (file shape or None if absent, model shape) of the
        output-sized tensor: the bias, else the weight) that kept their initialisation."""
        shapes = {k: (None, b) for k, b in self.missing_shapes.items()}
        shapes.update({k: (a, b) for k, a, b in self.mismatched})
        layers: dict[str, tuple[tuple | None, tuple]] = {}
        for key in sorted(shapes, key=lambda k: not k.endswith(".bias")):  # biases first
            layer = predictor_layer(key)
            if layer is not None and layer not in layers:
                layers[layer] = shapes[key]
        return layers

    def predictors_skipped_from_file(self) -> dict[str, tuple[tuple | None, tuple]]:
        """The `untrained_predictors` of heads the file did have: a predictor whose tensors
        don't fit (another class count), or one missing next to loaded layers of its head.
        Fine-tuning on new classes starts like this; a backbone initialisation does not."""
        def head_loaded(layer: str) -> bool:
            head = layer.rpartition(".")[0] + "."
            return any(k.startswith(head) for k in self.loaded)

        return {layer: shapes for layer, shapes in self.untrained_predictors().items()
                if shapes[0] is not None or head_loaded(layer)}

    def table(self) -> str:
        """Human-readable summary and one row per module with problems (keys grouped as ``mod.{a,b}``)."""
        total = len(self.loaded) + len(self.missing) + len(self.mismatched)
        lines = [f"Loaded '{self.path}' ({self.source}): {len(self.loaded)} of {total} model tensors."]
        rows = [("missing", k, "", "") for k in self.missing]
        rows += [("unexpected", k, "", "") for k in self.unexpected]
        rows += [("shape", k, str(tuple(a)), str(tuple(b))) for k, a, b in self.mismatched]
        rows += [("ignored", k, "", "") for k in self.ignored]
        grouped = _group_rows(rows)
        if grouped:
            width = max(len(r[1]) for r in grouped)
            lines.append(f"  {'status':<10}  {'key':<{width}}  {'file shape':<18}  model shape")
            lines += [f"  {s:<10}  {k:<{width}}  {a:<18}  {b}" for s, k, a, b in grouped]
        return "\n".join(lines)


def _group_rows(rows: list[tuple[str, str, str, str]]) -> list[tuple[str, str, str, str]]:
    """Merge rows of the same status and module into one ``module.{leaf1,leaf2}`` row."""
    groups: dict[tuple[str, str], list] = {}
    for status, key, file_shape, model_shape in rows:
        module, _, leaf = key.rpartition(".")
        groups.setdefault((status, module), []).append((leaf, file_shape, model_shape))
    merged = []
    for (status, module), leaves in groups.items():
        names = [leaf for leaf, _, _ in leaves]
        leaf_text = names[0] if len(names) == 1 else "{" + ",".join(names) + "}"
        key = f"{module}.{leaf_text}" if module else leaf_text
        merged.append((status, key, leaves[0][1], leaves[0][2]))
    return merged


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = False, verbose: bool = True) -> LoadReport:
    """Load a checkpoint of any supported format into `model` and print what fitted.

    Formats: detrun checkpoints, Detectron2 (model-zoo `.pkl`, training `.pth`, Caffe2/MSRA
    ImageNet `.pkl`), torchvision Faster/Mask R-CNN and ImageNet ResNets (see
    `detrun.checkpoint.formats`). Nothing in the file is executed: torch files are read with
    ``weights_only=True``, `.pkl` files with an unpickler that only builds numpy arrays.

    Tensors whose shapes differ (e.g. a predictor for another number of classes) are skipped
    and reported, so a detector can be fine-tuned on new classes from COCO weights. The
    backbone's ResNet ("trunk") must however fit exactly when the file has weights for it.

    Args:
        model: the module to fill (in place).
        path: the weights file.
        strict: also fail on any missing, unexpected or shape-mismatched key.
        verbose: print the report table.

    Returns:
        The `LoadReport`.

    Raises:
        CheckpointError: unreadable file (missing, wrong type, truncated, unsafe content), nothing
            in it fits the model, the ResNet doesn't match (another depth or architecture), or
            with `strict`, anything didn't fit. The message names the file and the keys.
    """
    model_state = model.state_dict()
    shapes = {k: tuple(v.shape) for k, v in model_state.items()}
    converted = convert_checkpoint(read_checkpoint(path), model_state.keys(), path, shapes)
    report = LoadReport(path=str(path), source=converted.source, ignored=list(converted.ignored),
                        unexpected=list(converted.unknown))
    to_load = {}
    for key, value in converted.state_dict.items():
        if key not in model_state:
            if not key.endswith(_RUNNING_STATE):
                report.unexpected.append(key)
        elif tuple(value.shape) != tuple(model_state[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(model_state[key].shape)))
        else:
            to_load[key] = value
    report.loaded = list(to_load)
    report.missing = [k for k in model_state if k not in converted.state_dict and not k.endswith(_RUNNING_STATE)]
    report.missing_shapes = {k: tuple(model_state[k].shape) for k in report.missing}
    if verbose:
        print(report.table(), file=sys.stdout, flush=True)
    _check_fit(report, converted.state_dict, converted.trunk, strict, converted.may_miss)
    model.load_state_dict(to_load, strict=False)
    skipped = report.predictors_skipped_from_file()
    if skipped and comm.is_main_process():
        logger.warning("weights file '%s' leaves these predictor layers at their initialisation: %s. Right when "
                       "fine-tuning on other classes; to use the file's predictors, build the model for the "
                       "file's class count.", report.path, describe_predictors(skipped))
    _REPORTS[model] = report
    return report


def load_report(model: nn.Module) -> LoadReport | None:
    """The report of the last `load_weights` into `model` (e.g. by its ``weights=`` argument), or None."""
    return _REPORTS.get(model)


def describe_predictors(layers: dict[str, tuple[tuple | None, tuple]]) -> str:
    """``layer (file (91,) vs model (4,))`` or ``layer (not in the file)`` for each layer, comma-separated."""
    return ", ".join(f"{layer} (file {a} vs model {b})" if a is not None else f"{layer} (not in the file)"
                     for layer, (a, b) in layers.items())


def _check_fit(report: LoadReport, file_state: dict, trunk: str | None, strict: bool,
               may_miss: re.Pattern | None = None) -> None:
    """Raise CheckpointError when the file is for another architecture (see `load_weights`)."""
    path = report.path
    if not report.loaded:
        raise CheckpointError(
            f"weights file '{path}' ({report.source}) doesn't fit the model: none of its tensors match a model "
            f"parameter by name and shape. File keys: {_examples(list(file_state) + report.unexpected)}; "
            f"model keys: {_examples(report.missing)}"
        )
    problems = {
        "missing": report.missing,
        "unexpected": report.unexpected,
        "shape-mismatched": [f"{k} (file {a} vs model {b})" for k, a, b in report.mismatched],
    }
    if strict:
        bad = {kind: keys for kind, keys in problems.items() if keys}
        if bad:
            raise CheckpointError(f"weights file '{path}' doesn't fit the model exactly (strict): " + "; ".join(
                f"{len(keys)} {kind} keys: {_examples(keys)}" for kind, keys in bad.items()))
        return
    if trunk is None or not any(k.startswith(trunk) for k in file_state):
        return
    bad = {kind: [k for k in keys if k.startswith(trunk) and not (kind == "missing" and may_miss and may_miss.search(k))]
           for kind, keys in problems.items()}
    bad = {kind: keys for kind, keys in bad.items() if keys}
    if bad:
        where = trunk.rstrip(".") or "the ResNet"
        raise CheckpointError(
            f"weights file '{path}' ({report.source}) has a different backbone than the model ({where}): "
            + "; ".join(f"{len(keys)} {kind} keys: {_examples(keys)}" for kind, keys in bad.items())
            + ". Is it for another depth, width or architecture? Check model.backbone against the file."
        )


def _examples(keys: list[str]) -> str:
    shown = ", ".join(keys[:_EXAMPLES])
    return shown + (f", ... ({len(keys) - _EXAMPLES} more)" if len(keys) > _EXAMPLES else "") if keys else "none"
