"""Hyper-parameter sweeps from W&B sweep YAMLs: online through W&B, or offline with local proposals and agents."""
