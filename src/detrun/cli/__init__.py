"""The command-line edge: the Hydra app and the task table. No library logic lives here."""
