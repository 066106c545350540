"""Small, named helpers (visualize, plots, comm, events): one concept per module, no grab bag."""
