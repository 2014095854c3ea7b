"""What audio and image classification fine-tuning share: folders of labelled files, a held-out split
that keeps every label in training, accuracy / macro-F1 / top-5 scored through the infer engine, and
a confusion-matrix PNG in the output folder."""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.metrics import classification as classification_metrics
from tasktool.training import data as D
from tasktool.training.classification import ClassificationTrainer, check_known_labels
from tasktool.training.media_data import AUDIO, engine_records, read_examples


class MediaClassificationTrainer(ClassificationTrainer):
    """Base for audio/image classifiers: subclasses load the processor and build the features."""

    loss_units = None  # audio/image batches stay whole: a waveform's mask is not a text's padding
    kind = AUDIO
    roles = {}  # read() below picks its own columns (--path-column, --label-column)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_eval: tuple[list[str], list[str], list[str]] | None = None

    # ------------------------------------------------------------------ data
    def read(self, source: D.Source) -> list[dict]:
        examples = read_examples(
            source,
            self.kind,
            "label",
            self.columns.get("path"),
            self.columns.get("label"),
            allow_outside=bool(self.recipe.get("allow_absolute_paths")),
        )
        for ex in examples:
            ex["label"] = self._rename(ex["label"])
        return examples

    def load_examples(self, data, eval_data):
        train = self.read(data)
        held_out = eval_data is None
        if held_out:
            train, evals = stratified_holdout(
                train, self.recipe.get("eval_fraction") or 0.2, self.recipe.get("seed") or 42
            )
        else:
            evals = self.read(eval_data)
        if self.recipe.get("max_train_samples"):
            train = train[: self.recipe["max_train_samples"]]
        if self.recipe.get("max_eval_samples"):
            evals = evals[: self.recipe["max_eval_samples"]]
        self.labels = self.label_set(train)
        known = {label: i for i, label in enumerate(self.labels)}
        evals = self.check_labels(evals, known, eval_data.name if eval_data else "the held-out split")
        return train, evals, held_out

    def eval_row(self, example: dict) -> dict:
        """Absolute paths, so eval.jsonl reads back from the output folder."""
        path = example["path"]
        if not path.startswith(("http://", "https://")):
            path = str(Path(path).resolve())
        return {"path": path, "label": example["label"]}

    @property
    def strict(self) -> bool:
        return bool(self.recipe.get("strict"))

    # ------------------------------------------------------------------ training
    def training_arguments(self, ckpt_dir, log_dir, has_eval, **extra):
        args = super().training_arguments(ckpt_dir, log_dir, has_eval, **extra)
        args.remove_unused_columns = False  # our collators take decoded media, not model columns
        if getattr(args, "train_sampling_strategy", None) == "group_by_length":
            args.train_sampling_strategy = "random"  # needs token lengths; media items have none
        return args

    def finish(self, folder: Path, summary: dict) -> None:
        if self.last_eval:
            preds, refs, labels = self.last_eval
            plot_confusion(confusion_matrix(preds, refs, labels), labels, folder / "confusion_matrix.png")
            card = folder / "README.md"
            if card.exists():
                card.write_text(
                    card.read_text(encoding="utf-8")
                    + "\n## Confusion matrix\n\n![confusion matrix](confusion_matrix.png)\n",
                    encoding="utf-8",
                )

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model_dir, examples, batch_size=32, device="auto", max_length=None):
        from tasktool import runtime

        config = runtime.load_config(model_dir)
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        known = {v: k for k, v in id2label.items()}
        examples = check_known_labels(examples, known, "the evaluation data")
        records = engine_records(
            self.spec,
            model_dir,
            [ex["path"] for ex in examples],
            batch_size=batch_size,
            device=device,
            strict=self.strict,
            kind=self.kind,
            top_k=5,
        )
        pairs = [(r, ex) for r, ex in zip(records, examples, strict=True) if "error" not in r]
        preds = [r["label"] for r, _ in pairs]
        refs = [ex["label"] for _, ex in pairs]
        metrics = classification_metrics(preds, refs)
        top5 = [ex["label"] in [x["label"] for x in r.get("labels", [])[:5]] for r, ex in pairs]
        metrics["top5_accuracy"] = sum(top5) / len(top5) if top5 else 0.0
        metrics["examples"] = len(pairs)
        if len(pairs) < len(records):
            metrics["skipped"] = len(records) - len(pairs)
        self.last_eval = (preds, refs, [id2label[i] for i in sorted(id2label)])
        out = [
            {
                "id": i,
                "input": r["input"],
                "label": ex["label"],
                "prediction": r["label"],
                "score": r["score"],
            }
            for i, (r, ex) in enumerate(pairs)
        ]
        return metrics, out


def stratified_holdout(examples: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A fixed-seed held-out share of each label; every label keeps at least one training example."""
    if not 0 < fraction < 1:
        from tasktool.errors import TaskToolError

        raise TaskToolError(
            f"eval_fraction must be between 0 and 1, got {fraction}", "e.g. eval_fraction=0.2"
        )
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex["label"], []).append(i)
    rng = random.Random(seed)
    eval_ids: set[int] = set()
    for ids in by_label.values():
        ids = ids[:]
        rng.shuffle(ids)
        eval_ids.update(ids[: min(round(len(ids) * fraction), len(ids) - 1)])
    if not eval_ids:  # too few per label: hold out one example of the largest label
        largest = max(by_label.values(), key=len)
        if len(largest) < 2:
            from tasktool.errors import TaskToolError

            raise TaskToolError(
                "too little data to hold out an evaluation split (one file per label)",
                "give more files, or pass --eval-data",
            )
        eval_ids.add(largest[-1])
    train = [ex for i, ex in enumerate(examples) if i not in eval_ids]
    evals = [ex for i, ex in enumerate(examples) if i in eval_ids]
    return train, evals


def confusion_matrix(preds: list[str], refs: list[str], labels: list[str]) -> list[list[int]]:
    """counts[true][predicted] over `labels` (labels the model never predicts still get a row)."""
    index = {label: i for i, label in enumerate(labels)}
    for label in [*refs, *preds]:
        if label not in index:
            index[label] = len(index)
            labels.append(label)
    counts = [[0] * len(labels) for _ in labels]
    for p, r in zip(preds, refs, strict=True):
        counts[index[r]][index[p]] += 1
    return counts


def plot_confusion(counts: list[list[int]], labels: list[str], path: Path) -> None:
    """Rows: true label, columns: predicted; shade = share of the row. PIL only (no matplotlib needed)."""
    from PIL import Image, ImageDraw

    n = len(labels)
    cell = max(16, min(56, 560 // max(n, 1)))
    names = [str(label)[:18] for label in labels]
    left = 12 + 7 * max((len(s) for s in names), default=4)
    top = 44 + min(7 * max((len(s) for s in names), default=4), 130)
    width, height = left + cell * n + 16, top + cell * n + 28
    img = Image.new("RGB", (max(width, 320), height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), "confusion matrix (rows: true label, columns: predicted)", fill="black")
    for i, row in enumerate(counts):
        total = sum(row) or 1
        for j, value in enumerate(row):
            share = value / total
            shade = (int(255 - 200 * share), int(255 - 150 * share), 255)
            x0, y0 = left + j * cell, top + i * cell
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=shade, outline=(160, 160, 160))
            if cell >= 16:
                text = str(value)
                draw.text(
                    (x0 + cell // 2 - 3 * len(text), y0 + cell // 2 - 5),
                    text,
                    fill="white" if share > 0.6 else "black",
                )
        draw.text((8, top + i * cell + cell // 2 - 5), names[i], fill="black")
    for j, name in enumerate(names):  # column names written downwards, one character per line
        x = left + j * cell + cell // 2 - 3
        for k, ch in enumerate(name[: (top - 30) // 8]):
            draw.text((x, 24 + 8 * k), ch, fill="black")
    accuracy = sum(counts[i][i] for i in range(n)) / max(sum(map(sum, counts)), 1)
    draw.text(
        (8, top + cell * n + 8), f"accuracy {accuracy:.3f} on {sum(map(sum, counts))} examples", fill="black"
    )
    tmp = path.with_name(path.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(path)
