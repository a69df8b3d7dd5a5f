"""A model family defined outside the workflow's repository (README.md)."""
