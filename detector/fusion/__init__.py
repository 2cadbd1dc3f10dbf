"""Fusion of check features into one calibrated probability."""
