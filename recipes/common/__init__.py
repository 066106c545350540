"""Recipe pieces shared by the recipes: models, data, optimizer, schedules, trainer."""
