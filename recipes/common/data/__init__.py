"""Data loader recipe nodes: `shapes` (built-in synthetic set) and `coco` (COCO 2017)."""
