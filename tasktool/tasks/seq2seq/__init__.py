"""Encoder-decoder text tasks: summarization (document -> summary) and translation (source -> target).

One folder serves both registry entries: they share the model class, the predictor, the trainer and
the evaluator, and differ in their input prefix / language settings and their metric.
"""
