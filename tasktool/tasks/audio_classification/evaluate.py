"""Scoring audio classifiers: accuracy, macro-F1 and top-5 accuracy; a confusion matrix picture."""

from tasktool.tasks.media_classes import MediaClassEvaluator


class Evaluator(MediaClassEvaluator):
    kind = "audio"
