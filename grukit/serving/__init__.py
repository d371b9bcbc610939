"""Serving: int8 and bfloat16 models."""
