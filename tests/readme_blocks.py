"""The README's code blocks, for tests that check the README's examples verbatim."""
import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def readme_recipe_blocks() -> dict[str, str]:
    """The README's Python blocks that are recipe files (first line ``# recipes/NAME.py``), by file name."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return {m[1]: block for block in blocks if (m := re.match(r"# recipes/(\w+\.py)\n", block))}
