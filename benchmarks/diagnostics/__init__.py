"""Diagnostics beyond the end-to-end benchmark: where a training step's time goes on this machine."""
