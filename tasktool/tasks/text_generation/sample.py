"""A built-in sample for `tasktool smoke`: lines of text, and prompts of four words (GPT-2 style); and a
chat variant on a tiny Llama-style model with a chat template: conversations whose assistant always
answers the same word, fine-tuned with LoRA (the chat-lora recipe), then asked new questions."""

from __future__ import annotations

import random
from pathlib import Path

from tasktool.tiny.samples import filler, text_lines, write_jsonl, write_text

ANSWER = "yes"  # what the sample's assistant always says
VARIANTS = ("chat-lora",)  # `tasktool smoke` runs these after the plain sample
SYSTEM = "Answer in one word."


def conversation(rng: random.Random, answer: str | None = ANSWER) -> dict:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": " ".join(filler(rng, rng.randint(3, 8))) + "?"},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def chat_rows(n: int, seed: int = 0, answer: str | None = ANSWER) -> list[dict]:
    rng = random.Random(seed)
    return [conversation(rng, answer) for _ in range(n)]


def write(folder: Path, spec=None) -> dict:
    lines = text_lines(40)
    chats = chat_rows(24)
    return {
        "train": write_text(folder / "train.txt", lines[:32]),
        "eval": write_text(folder / "eval.txt", lines[32:]),
        "infer": [" ".join(line.split()[:4]) for line in lines[32:35]],
        "infer_options": {"max_new_tokens": 8},
        "variants": {
            VARIANTS[0]: {
                "tiny": {"family": "llama"},
                "recipe": "chat-lora",
                "train": write_jsonl(folder / "chat_train.jsonl", chats[:16]),
                "eval": write_jsonl(folder / "chat_eval.jsonl", chats[16:]),
                "infer_file": str(
                    write_jsonl(folder / "chat_infer.jsonl", chat_rows(3, seed=1, answer=None))
                ),
                "infer_options": {"max_new_tokens": 4},
            }
        },
    }
