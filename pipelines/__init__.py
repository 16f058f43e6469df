"""Data pipeline: layouts, cleaning, splitting, the person representation, Dask runners, synthetic data."""
