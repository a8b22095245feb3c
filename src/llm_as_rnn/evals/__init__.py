"""Evaluation: datasets, baselines, metrics, the resumable runner and its report."""
