"""What audio and image classification share: folders of labelled files, a held-out split that keeps
every label in training, accuracy / macro-F1 (and top-5 where there are more than 5 classes) scored
through the infer engine (unreadable files skipped and counted), and a confusion-matrix picture in
the output folder."""

from __future__ import annotations

from tasktool.evaluator import Evaluator, known_labels, report_skipped
from tasktool.io.labelled import Reader
from tasktool.io.media import read_examples
from tasktool.metrics import classification as classification_metrics
from tasktool.tasks.classes import (
    accuracy_hooks,
    check_known_labels,
    classifier_report,
    confusion_artifacts,
    training_labels,
)
from tasktool.training import data as D
from tasktool.training.trainer import TaskTrainer


class MediaReader(Reader):
    """Labelled files: class sub-folders, a metadata file, a manifest or a dataset (--path/--label-column)."""

    kind = "audio"

    def read(self, source):
        examples = read_examples(
            source,
            self.kind,
            "label",
            self.columns.get("path"),
            self.columns.get("label"),
            allow_outside=bool(self.recipe.get("allow_absolute_paths")),
        )
        names = self.recipe.get("label_names")
        for ex in examples:
            if names and ex["label"].isdigit() and int(ex["label"]) < len(names):
                ex["label"] = names[int(ex["label"])]
        return examples

    def eval_row(self, example: dict) -> dict:
        """Absolute paths, so eval.jsonl reads back from the output folder."""
        from pathlib import Path

        path = example["path"]
        if not path.startswith(("http://", "https://")):
            path = str(Path(path).resolve())
        return {"path": path, "label": example["label"]}


class MediaClassTrainer(TaskTrainer):
    """Base for audio/image classifiers: subclasses load the processor and build the features."""

    stratified = True
    best_metric = "accuracy"
    trainer_metric_names = ("accuracy",)

    def logits_metrics(self, eval_examples, eval_features):
        return accuracy_hooks(self.labels or [], [ex["label"] for ex in eval_examples])

    @property
    def strict(self) -> bool:
        return bool(self.recipe.get("strict"))

    def holdout(self, examples):
        return D.stratified_holdout(
            examples,
            self.recipe.get("eval_fraction") or 0.1,
            self.recipe.get("seed") or 42,
            self.holdout_cap(),
        )

    def label_set(self, examples):
        return training_labels(self.recipe, examples)

    def check_labels(self, examples, known, source_name):
        return check_known_labels(examples, known, source_name)

    def training_arguments(self, ckpt_dir, log_dir, has_eval, **extra):
        args = super().training_arguments(ckpt_dir, log_dir, has_eval, **extra)
        args.remove_unused_columns = False  # our collators take decoded media, not model columns
        if getattr(args, "train_sampling_strategy", None) == "group_by_length":
            args.train_sampling_strategy = "random"  # needs token lengths; media items have none
        return args


class MediaClassEvaluator(Evaluator):
    kind = "audio"
    on_error = "skip"  # an unreadable file is counted and left out, not the end of the evaluation

    def check(self, examples, config):
        self.id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
        return check_known_labels(
            examples, known_labels(config), "the evaluation data", quiet=getattr(self, "quiet_unseen", False)
        )

    def infer_options(self):
        return {"top_k": 5}

    def payload(self, ex):
        return ex["path"]

    def predictions(self, model_dir, payloads, batch_size, device, max_length):
        from tasktool.errors import TaskToolError

        strict = bool(self.recipe.get("strict"))
        self.on_error = "raise" if strict else "skip"
        try:
            records = super().predictions(model_dir, payloads, batch_size, device, None)
        except TaskToolError as exc:
            if strict:
                raise TaskToolError(
                    exc.message, "fix or remove the file, or run without --strict to skip it"
                ) from exc
            raise
        report_skipped(records, self.kind, strict=False)
        return records

    def score(self, examples, records):
        pairs = [(r, ex) for r, ex in zip(records, examples, strict=True) if "error" not in r]
        preds = [r["label"] for r, _ in pairs]
        refs = [ex["label"] for _, ex in pairs]
        metrics = classification_metrics(preds, refs)
        if len(self.id2label) > 5:  # with 5 classes or fewer the top 5 hold every label: always 1.0
            top5 = [ex["label"] in [x["label"] for x in r.get("labels", [])[:5]] for r, ex in pairs]
            metrics["top5_accuracy"] = sum(top5) / len(top5) if top5 else 0.0
        metrics["examples"] = len(pairs)
        if len(pairs) < len(records):
            metrics["skipped"] = len(records) - len(pairs)
        metrics.update(classifier_report(self, preds, refs))
        rows = [
            {
                "id": i,
                "input": r["input"],
                "label": ex["label"],
                "prediction": r["label"],
                "score": r["score"],
            }
            for i, (r, ex) in enumerate(pairs)
        ]
        return metrics, rows

    def artifacts(self, folder):
        if not getattr(self, "last", None):
            return []
        return confusion_artifacts(folder, *self.last)
