"""Scoring audio classifiers: accuracy, macro-F1 and (over 5 classes) top-5 accuracy; a confusion matrix picture."""

from tasktool.tasks.media_classes import MediaClassEvaluator


class Evaluator(MediaClassEvaluator):
    kind = "audio"
