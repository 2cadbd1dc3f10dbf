"""Training and offline evaluation of the project's own learned models (needs the ``train`` extra)."""
