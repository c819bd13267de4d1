"""Explainable driving commentary (LINGO-1 style): a short clip in, what the car does and why out."""
