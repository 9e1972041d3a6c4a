"""Mairror machine learning: face detection, alignment, age and gender models. Never imports Django."""
