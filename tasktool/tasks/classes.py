"""What classifiers share (sentences, clips, images): label order, labels the model must know, and
the confusion matrix picture left in a fine-tuned model's folder."""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError


def label_key(label: str):
    """Numbers sort as numbers (2 before 10), anything else alphabetically after them."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def check_known_labels(
    examples: list[dict], known: dict[str, int], source_name: str, quiet: bool = False
) -> list[dict]:
    """Eval labels the model was not trained on stay, and count as errors (the model cannot answer them),
    with one warning listing them; integer labels may name label ids."""
    id2label = {v: k for k, v in known.items()}
    named = any(k.isdigit() for k in known)
    out, unseen = [], {}
    for n, ex in enumerate(examples):
        label = ex["label"]
        if label not in known:
            if label.isdigit() and int(label) in id2label and not named:
                ex = {**ex, "label": id2label[int(label)]}
            else:
                unseen.setdefault(label, ex.get("_where") or f"{source_name}, row {n + 1}")
        out.append(ex)
    if unseen and not quiet:
        warn_unseen(unseen, known, "label", label_key)
    return out


def warn_unseen(unseen: dict[str, str], known, kind: str, key) -> None:
    """One warning naming the labels the model was never trained on (and where each first appears)."""
    from tasktool.console import warn

    shown = ", ".join(f"'{label}' ({where})" for label, where in list(unseen.items())[:6])
    more = f" and {len(unseen) - 6} more" if len(unseen) > 6 else ""
    warn(
        f"{len(unseen)} evaluation {kind}(s) the model was not trained on: {shown}{more}; they count as "
        f"errors. The model knows: {', '.join(sorted(known, key=key))} (declare the whole set with "
        f"labels=... or --labels FILE)"
    )


def majority_baseline(refs: list[str]) -> dict:
    """The score of always answering the evaluation data's most frequent label (the best constant
    answer on this data): the floor a trained classifier must clear."""
    from collections import Counter

    from tasktool.metrics import classification

    if not refs:
        return {}
    top, _ = max(Counter(refs).items(), key=lambda kv: (kv[1], -refs.index(kv[0])))
    scores = classification([top] * len(refs), refs)
    return {
        "baseline": f"majority class '{top}'",
        "baseline_accuracy": scores["accuracy"],
        "baseline_macro_f1": scores["macro_f1"],
    }


def per_class(preds: list[str], refs: list[str], labels: list[str]) -> dict:
    """Precision, recall, F1 and support of each label (scikit-learn), the model's labels first."""
    from sklearn.metrics import precision_recall_fscore_support

    names = list(labels) + sorted({*refs, *preds} - set(labels), key=label_key)
    p, r, f, n = precision_recall_fscore_support(refs, preds, labels=names, zero_division=0)
    return {
        name: {"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
        for name, a, b, c, d in zip(names, p, r, f, n, strict=True)
    }


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
    """Rows: true label, columns: predicted; shade = share of the row, the count in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.array(counts, dtype=float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [str(label)[:18] for label in labels]
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            ax.text(
                j, i, str(value), ha="center", va="center", color="white" if shares[i, j] > 0.6 else "black"
            )
    total = int(matrix.sum())
    accuracy = float(np.trace(matrix)) / max(total, 1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true label")
    ax.set_title(f"confusion matrix: accuracy {accuracy:.3f} on {total} examples")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def confusion_artifacts(folder: Path, preds: list[str], refs: list[str], labels: list[str]) -> list[str]:
    """confusion_matrix.png in a fine-tuned model's folder; the model card section that shows it."""
    labels = list(labels)
    counts = confusion_matrix(preds, refs, labels)  # adds labels only the data has
    plot_confusion(counts, labels, folder / "confusion_matrix.png")
    return ["## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)"]


def declared_labels(
    recipe: dict, examples: list[dict], kind: str = "label", key=label_key
) -> list[str] | None:
    """The recipe's `labels` (the whole label set, declared up front), checked against the training
    rows; None when none are declared."""
    declared = recipe.get("labels")
    if not declared:
        return None
    known = set(declared)
    for n, ex in enumerate(examples):
        values = ex["ner_tags"] if "ner_tags" in ex else [ex["label"]]
        for value in values:
            if value not in known:
                where = ex.get("_where") or f"training row {n + 1}"
                raise TaskToolError(
                    f"{where}: {kind} '{value}' is not in the declared labels",
                    f"add it to labels=... / --labels FILE (declared: {', '.join(sorted(known, key=key))})",
                )
    return list(dict.fromkeys(declared))


def accuracy_hooks(labels: list[str], refs: list[str]):
    """(compute_metrics, preprocess_logits_for_metrics) for the Trainer's evaluations of a classifier:
    accuracy of the arg-max label against the evaluation rows' own labels (one unseen in training can
    never be right, as in the final evaluation)."""

    def preprocess(logits, _labels):
        if isinstance(logits, tuple):
            logits = logits[0]
        return logits.argmax(-1)

    def compute(pred) -> dict:
        ids = pred.predictions.reshape(-1).tolist()
        hits = sum(labels[i] == ref for i, ref in zip(ids, refs, strict=True))
        return {"accuracy": hits / max(len(refs), 1)}

    return compute, preprocess


def training_labels(recipe: dict, examples: list[dict]) -> list[str]:
    """A classifier's label set: the declared `labels`, else the training rows' labels in `label_names`
    order (ids sorted as numbers); refused with fewer than two."""
    declared = declared_labels(recipe, examples)
    if declared:
        return declared
    labels = sorted({ex["label"] for ex in examples}, key=label_key)
    names = recipe.get("label_names")
    if names:
        labels = [n for n in names if n in labels] + [lb for lb in labels if lb not in names]
    if len(labels) < 2:
        raise TaskToolError(
            f"the training data has a single label ({labels[0] if labels else 'none'})",
            "a classifier needs at least two labels",
        )
    return labels


def classifier_report(evaluator, preds: list[str], refs: list[str]) -> dict:
    """What a classifier's evaluation adds beside accuracy: the majority baseline (returned, for the
    metrics), per-class scores and unseen labels (evaluator.details, for the card) and the confusion
    inputs (evaluator.last, for the picture)."""
    names = [evaluator.id2label[i] for i in sorted(evaluator.id2label)]
    evaluator.details = {"per_class": per_class(preds, refs, names)}
    unseen = sorted(set(refs) - set(names))
    if unseen:
        evaluator.details["unseen_labels"] = unseen
    evaluator.last = (preds, refs, names)
    return majority_baseline(refs)
