"""blo-alert benchmarks: python bench/run.py (see run.py)."""
