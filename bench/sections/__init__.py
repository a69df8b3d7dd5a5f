"""The benchmark sections, one module each (``bench.cli`` runs them)."""
