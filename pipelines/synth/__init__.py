"""Synthetic datasets in the real file formats, with planted faults and their ground truth."""
