"""What a user writes without tasktool: one script calling transformers.pipeline over a file of lines.

    python benchmarks/pipeline_infer.py TASK MODEL INPUT.txt OUTPUT.jsonl BATCH_SIZE

benchmarks/onnx_speed.py times this whole process (start-up, model load, inference, writing) against
`tasktool infer` doing the same work.
"""

from __future__ import annotations

import json
import sys


def main(task: str, model: str, source: str, output: str, batch_size: int) -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    kwargs = {"aggregation_strategy": "simple"} if task == "token-classification" else {}
    pipe = transformers.pipeline(task, model=model, device="cpu", **kwargs)
    with open(source, encoding="utf-8") as fh:
        texts = [line.rstrip("\n") for line in fh if line.strip()]
    with open(output, "w", encoding="utf-8") as out:
        for text, result in zip(texts, pipe(texts, batch_size=batch_size), strict=True):
            # numpy scalars (entity scores, offsets) as plain numbers
            out.write(json.dumps({"input": text, "result": result}, default=lambda x: x.item()) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
