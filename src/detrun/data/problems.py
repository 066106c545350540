"""Bad input in a data set: the errors we raise, and the log that raises or counts them.

Every problem names the file and the annotation (or image) id. A loader either raises at
the first problem (``on_error="raise"``, the default: never a silently wrong box) or drops
the offending annotation/image, counts it and warns once with a summary (``on_error="skip"``).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from detrun.errors import UserError

logger = logging.getLogger(__name__)

ON_ERROR_CHOICES = ("raise", "skip")


class DataError(UserError, ValueError):
    """An image, annotation or annotation file is unusable; the message names file and id."""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A data set's files are not where they were expected; the message says where and how to fix it."""


@dataclass(frozen=True)
class Problem:
    """One bad input: `kind` is a short category ("zero-size box", "missing image", ...)."""

    kind: str
    file: str
    message: str
    image_id: object = None
    annotation_id: object = None

    def __str__(self) -> str:
        where = [f"file '{self.file}'"]
        if self.image_id is not None:
            where.append(f"image id {self.image_id}")
        if self.annotation_id is not None:
            where.append(f"annotation id {self.annotation_id}")
        return f"{self.kind}: {self.message} ({', '.join(where)})"


class ProblemLog:
    """Collects problems; in "raise" mode the first one raises DataError instead."""

    def __init__(self, on_error: str = "raise"):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got '{on_error}'")
        self.on_error = on_error
        self.problems: list[Problem] = []

    def add(self, kind: str, file: str, message: str, *, image_id=None, annotation_id=None) -> None:
        problem = Problem(kind, str(file), message, image_id, annotation_id)
        if self.on_error == "raise":
            raise DataError(
                f"{problem}. Fix the data, or set on_error='skip' in the data set's recipe node to drop such "
                "annotations with a warning; `python -m detrun task=check_data dataset=NAME` lists every problem."
            )
        self.problems.append(problem)

    def warn_summary(self, source: str) -> None:
        """Log one warning with the count of each kind of skipped problem (no-op if none)."""
        if not self.problems:
            return
        counts = Counter(p.kind for p in self.problems)
        summary = ", ".join(f"{n} × {kind}" for kind, n in counts.most_common())
        logger.warning(
            "%s: skipped %d bad inputs (%s); first: %s. Run `python -m detrun task=check_data dataset=NAME` for the list.",
            source, len(self.problems), summary, self.problems[0],
        )
