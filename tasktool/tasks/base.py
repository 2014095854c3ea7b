"""The contract of a task folder: four small classes over task-agnostic engines, plus a sample.

A task folder (`tasktool/tasks/<task>/`, named by its registry entry) holds:

- ``predict.py``: ``Predictor(spec, opts)``, the inference hooks the engine (tasktool.engine) calls,
  in the spirit of transformers' Pipeline: ``prepare`` (pre-process one input, or ``prepare_many``
  for a window), ``length`` (a cost to sort and budget batches), ``predict`` (forward + post-process
  a batch into one record per input) and ``display`` (table columns).
- ``data.py``: ``Reader(spec, recipe, columns)``, the labelled-data hooks (tasktool.io.labelled):
  ``roles`` (the columns it needs) and ``example`` (one row -> one checked example).
- ``train.py``: ``Trainer(spec, recipe, columns)``, the fine-tuning hooks over
  tasktool.training.trainer: ``label_set``, ``features``, ``collator`` and friends.
- ``evaluate.py``: ``Evaluator(spec, recipe)``, the metric hooks over tasktool.evaluator:
  ``payload`` (an example as the engine's input), ``check`` and ``score``.
- ``sample.py``: ``write(folder, spec)``, a small built-in sample for `tasktool smoke` (training and
  evaluation files, infer inputs and options); ``TINY`` / ``SMOKE_TINY``, the tiny model's settings
  (labels); and, for an architecture family tasktool.tiny does not build, ``build_tiny(out, **kw)``.

Tasks with inference only (registry ``modes=("infer",)``) need only predict.py and sample.py.
The engines never import a task folder; the registry points at it.
"""

from __future__ import annotations

from tasktool.engine import Predictor
from tasktool.evaluator import Evaluator
from tasktool.io.labelled import Reader
from tasktool.training.trainer import TaskTrainer

__all__ = ["Evaluator", "Predictor", "Reader", "TaskTrainer"]
