"""Compositions across stages: inference then scoring, and the demo."""
