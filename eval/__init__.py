"""Evaluation: metrics as functions and batched accumulators, protocols, statistics."""
