"""Offline metrics, computed with the metric libraries directly (the `evaluate` library fetches metric scripts from the Hub).

Every function takes plain Python lists and returns a flat dict of floats, so `tasktool evaluate`,
the trainers and the tests share one implementation. One scale for every bounded metric: 0-1
(accuracy, F1, precision, recall, exact match, ROUGE, BLEU, chrF, WER, CER; sacreBLEU's and the
SQuAD script's percentages are divided by 100). Loss and perplexity are not bounded.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence


def accuracy(predictions: Sequence, references: Sequence) -> float:
    if not references:
        return 0.0
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def macro_f1(predictions: Sequence, references: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-label F1 over the labels seen in references or predictions."""
    labels = list(labels) if labels is not None else sorted(set(references) | set(predictions), key=str)
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predictions, references, strict=True))
        fp = sum(p == label and r != label for p, r in zip(predictions, references, strict=True))
        fn = sum(p != label and r == label for p, r in zip(predictions, references, strict=True))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


def classification(predictions: Sequence, references: Sequence) -> dict[str, float]:
    return {"accuracy": accuracy(predictions, references), "macro_f1": macro_f1(predictions, references)}


def seqeval_scores(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Entity-level precision/recall/F1 (seqeval, CoNLL rules) plus token accuracy."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    flat_p = [t for seq in predictions for t in seq]
    flat_r = [t for seq in references for t in seq]
    return {
        "precision": float(precision_score(references, predictions, zero_division=0)),
        "recall": float(recall_score(references, predictions, zero_division=0)),
        "f1": float(f1_score(references, predictions, zero_division=0)),
        "token_accuracy": accuracy(flat_p, flat_r),
    }


# --- SQuAD (the official v1.1 normalisation) ---------------------------------------------------


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 (0-1), each prediction scored against its best gold answer."""
    if not references:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for pred, golds in zip(predictions, references, strict=True):
        golds = list(golds) or [""]
        em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
        f1 += max(_token_f1(pred, g) for g in golds)
    return {"exact_match": em / len(references), "f1": f1 / len(references)}


# --- generation -------------------------------------------------------------------------------


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L F-measure (0-1), with stemming as in the summarisation papers."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    totals = dict.fromkeys(["rouge1", "rouge2", "rougeL", "rougeLsum"], 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        pred_l, ref_l = pred.replace(". ", ".\n"), ref.replace(". ", ".\n")  # rougeLsum: a sentence a line
        for key, score in scorer.score(ref_l, pred_l).items():
            totals[key] += score.fmeasure
    n = max(len(references), 1)
    return {key: value / n for key, value in totals.items()}


def bleu_chrf(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Corpus sacreBLEU and chrF (0-1: sacrebleu's percentages / 100); a sentence may have several references."""
    import sacrebleu

    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    width = max((len(r) for r in refs), default=1)
    streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
    return {
        "bleu": float(sacrebleu.corpus_bleu(list(predictions), streams).score) / 100,
        "chrf": float(sacrebleu.corpus_chrf(list(predictions), streams).score) / 100,
    }


def perplexity(total_nll: float, total_tokens: int) -> dict[str, float]:
    """From summed token negative log-likelihood: mean loss and exp(mean loss)."""
    if total_tokens <= 0:
        return {"loss": float("nan"), "perplexity": float("nan")}
    loss = total_nll / total_tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def wer_cer(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    import jiwer

    return {
        "wer": float(jiwer.wer(list(references), list(predictions))),
        "cer": float(jiwer.cer(list(references), list(predictions))),
    }
