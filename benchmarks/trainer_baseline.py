"""The baseline fine-tuning run: a default transformers Trainer (random batches, fp32) on the same data.

Usage: trainer_baseline.py TRAIN.csv BASE_MODEL OUT_DIR SETTINGS_JSON; prints one JSON line with
samples/s and the mean training loss.
"""

from __future__ import annotations

import csv
import json
import sys


def main() -> None:
    train_csv, base, out, settings = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    import datasets
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with open(train_csv, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = sorted({r["label"] for r in rows})
    tok = AutoTokenizer.from_pretrained(base)
    enc = tok([r["text"] for r in rows], truncation=True, max_length=settings["max_length"])
    data = datasets.Dataset.from_dict({**enc, "labels": [labels.index(r["label"]) for r in rows]})
    transformers.set_seed(settings["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={v: i for i, v in enumerate(labels)},
    )
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=settings["batch_size"],
        num_train_epochs=settings["epochs"],
        learning_rate=settings["lr"],
        warmup_steps=settings["warmup_ratio"],
        weight_decay=settings["weight_decay"],
        seed=settings["seed"],
        # save_strategy left at its default: like tasktool, a default Trainer checkpoints after the last step
        report_to="none",
        disable_tqdm=True,
        logging_steps=10,
        **settings.get("extra", {}),
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok))
    result = trainer.train()
    runtime = float(result.metrics["train_runtime"])
    trainer.save_model(out)  # after the timing: the benchmark scores both paths' models alike
    tok.save_pretrained(out)
    print(
        json.dumps(
            {
                "samples_per_s": len(rows) * settings["epochs"] / runtime,
                "train_loss": result.training_loss,
                "runtime_s": runtime,
            }
        )
    )


if __name__ == "__main__":
    main()
