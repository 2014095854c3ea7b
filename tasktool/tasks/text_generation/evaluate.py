"""Scoring causal language models: perplexity of held-out text."""

from tasktool.tasks.language_model import PerplexityEvaluator


class Evaluator(PerplexityEvaluator):
    causal = True
