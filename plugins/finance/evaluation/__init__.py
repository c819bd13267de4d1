"""Scoring: FinQA / TAT-QA metrics and evaluation of a model folder."""
