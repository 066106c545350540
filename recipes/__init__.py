"""Python recipe files (imported as `detrun.recipes`); see `detrun.config.get_recipe`."""
