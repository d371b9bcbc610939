"""The ``grukit`` command: its jobs (forecast, classify) on one skeleton, and bench."""
