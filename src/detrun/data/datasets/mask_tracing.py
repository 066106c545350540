"""Bitmap → polygons along pixel edges, so that pycocotools rasterizes them back to the same pixels.

Used to write the shapes data set's visible-part polygons: a mask traced here and decoded with
``pycocotools.mask.frPyObjects`` + ``decode`` gives the original mask exactly (tested), as long as
the mask has no holes (COCO polygons of one object are a union, so they can't express a hole).
"""
from __future__ import annotations

import numpy as np

# Unit steps of boundary edges, walked with the object on the right-hand side (image y axis points down).
_RIGHT, _DOWN, _LEFT, _UP = (1, 0), (0, 1), (-1, 0), (0, -1)
# At a vertex where two boundary walks meet (pixels touching only at a corner), prefer the right turn:
# it keeps the walk around the current pixel, splitting diagonal neighbours into separate loops.
_RIGHT_TURN = {_RIGHT: _DOWN, _DOWN: _LEFT, _LEFT: _UP, _UP: _RIGHT}


def _boundary_edges(mask: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Directed unit edges between pixel corners, object on the right: start vertex → list of steps."""
    m = np.pad(mask.astype(bool), 1)
    inner = m[1:-1, 1:-1]
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # (neighbour offset, step, start-corner offset (dx, dy) relative to the pixel's top-left corner)
    sides = (
        ((-1, 0), _RIGHT, (0, 0)),  # top side, walked left → right
        ((0, 1), _DOWN, (1, 0)),  # right side, top → bottom
        ((1, 0), _LEFT, (1, 1)),  # bottom side, right → left
        ((0, -1), _UP, (0, 1)),  # left side, bottom → top
    )
    h, w = mask.shape
    for (di, dj), step, (ox, oy) in sides:
        outside = ~m[1 + di: 1 + di + h, 1 + dj: 1 + dj + w]
        ys, xs = np.nonzero(inner & outside)
        for x, y in zip((xs + ox).tolist(), (ys + oy).tolist()):
            edges.setdefault((x, y), []).append(step)
    return edges


def mask_to_polygons(mask: np.ndarray) -> tuple[list[list[int]], bool]:
    """Trace the pixel-edge boundary loops of a bool mask [H, W].

    Returns (polygons, has_holes): polygons are flat [x0, y0, x1, y1, ...] int lists of pixel-corner
    coordinates (only the corners where the boundary turns) of each outer loop; has_holes tells
    whether the mask had holes, which the polygons do not represent.
    """
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return [], False
    # Trace only the mask's bounding window (much cheaper for small objects in big images), then shift back.
    y0, x0 = int(rows[0]), int(cols[0])
    edges = _boundary_edges(mask[y0: rows[-1] + 1, x0: cols[-1] + 1])
    polygons, has_holes = [], False
    while edges:
        start = next(iter(edges))
        vertex, loop, prev_step = start, [], None
        while vertex in edges:
            steps = edges[vertex]
            step = _RIGHT_TURN[prev_step] if prev_step is not None and _RIGHT_TURN[prev_step] in steps and len(steps) > 1 else steps[0]
            steps.remove(step)
            if not steps:
                del edges[vertex]
            if step != prev_step:
                loop.append(vertex)
            prev_step = step
            vertex = (vertex[0] + step[0], vertex[1] + step[1])
        # The walk also records the start vertex as a turn; drop it if the loop runs straight through it.
        if len(loop) > 1 and loop[0] == start and _collinear(loop[-1], loop[0], loop[1]):
            loop = loop[1:]
        pts = np.asarray(loop, dtype=np.int64) + (x0, y0)  # integer corners: short JSON, exact
        # Shoelace in image coordinates: outer loops (object on the right, y down) have positive area.
        area = 0.5 * float(np.dot(pts[:, 0], np.roll(pts[:, 1], -1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], -1)))
        if area > 0:
            polygons.append(pts.reshape(-1).tolist())
        else:
            has_holes = True
    return polygons, has_holes


def _collinear(a, b, c) -> bool:
    return (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]) == 0
