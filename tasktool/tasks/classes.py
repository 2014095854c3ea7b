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


def check_known_labels(examples: list[dict], known: dict[str, int], source_name: str) -> list[dict]:
    """Eval labels must be ones the model was trained on; integer labels may name label ids."""
    id2label = {v: k for k, v in known.items()}
    out = []
    for n, ex in enumerate(examples):
        label = ex["label"]
        if label not in known:
            if label.isdigit() and int(label) in id2label and not any(k.isdigit() for k in known):
                ex = {**ex, "label": id2label[int(label)]}
            else:
                raise TaskToolError(
                    f"{ex.get('_where') or f'{source_name}, row {n + 1}'}: label '{label}' was not seen in training",
                    f"the model knows: {', '.join(sorted(known, key=label_key))}",
                )
        out.append(ex)
    return out


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
