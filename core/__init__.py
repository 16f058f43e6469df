"""Shared ground of every stage: file names and formats, safe I/O, devices, weight lookup, the Dask runner.

Imports nothing else of vton, so every package above can use it.
"""
