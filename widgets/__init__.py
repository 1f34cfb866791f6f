"""Notebook side: chat widgets, the %%deepspace magic (the workbench issue)."""
