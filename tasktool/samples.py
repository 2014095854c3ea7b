"""Small built-in samples for every task, written on demand (no data files shipped for them).

The smoke mode fine-tunes and evaluates on these; they use the column names the readers
expect by default, so they also document the input formats.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from tasktool.tiny.text import WORDS

POSITIVE = ["great", "wonderful", "amazing", "brilliant", "fantastic", "best", "love", "happy"]
NEGATIVE = ["terrible", "awful", "worst", "boring", "dull", "poor", "hate", "sad"]
NAMES = ["john", "mary", "smith"]
PLACES = ["paris", "london", "berlin"]


def _sentence(rng: random.Random, k: int) -> list[str]:
    filler = [w for w in WORDS if w not in POSITIVE + NEGATIVE + NAMES + PLACES]
    return rng.choices(filler, k=k)


def classification_rows(n: int, seed: int = 0) -> list[dict]:
    """Label = whether the sentence holds a positive or a negative word: learnable from one token."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = _sentence(rng, rng.randint(3, 10))
        label = "positive" if i % 2 == 0 else "negative"
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
        rows.append({"text": " ".join(words), "label": label})
    return rows


def ner_rows(n: int, seed: int = 0) -> list[dict]:
    """Names are PER, cities are LOC: each tag follows from the word itself."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens = _sentence(rng, rng.randint(3, 8))
        tags = ["O"] * len(tokens)
        for entity, label in ((rng.choice(NAMES), "PER"), (rng.choice(PLACES), "LOC")):
            at = rng.randrange(len(tokens) + 1)
            tokens.insert(at, entity)
            tags.insert(at, "B-" + label)
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


def qa_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        before = " ".join(_sentence(rng, rng.randint(2, 6)))
        context = f"{before} {name} lives in {place} . " + " ".join(_sentence(rng, rng.randint(2, 6)))
        rows.append(
            {
                "id": f"q{i}",
                "question": f"where does {name} live ?",
                "context": context,
                "answers": {"text": [place], "answer_start": [context.index(f" in {place}") + 4]},
            }
        )
    return rows


def seq2seq_rows(n: int, seed: int = 0, src: str = "en", tgt: str = "ro") -> tuple[list[dict], list[dict]]:
    """Summaries are the first three words; 'translations' reverse the words (a learnable mapping)."""
    rng = random.Random(seed)
    summaries, translations = [], []
    for _ in range(n):
        words = _sentence(rng, rng.randint(4, 10))
        summaries.append({"document": " ".join(words), "summary": " ".join(words[:3])})
        translations.append({"translation": {src: " ".join(words), tgt: " ".join(reversed(words))}})
    return summaries, translations


def text_lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(_sentence(rng, rng.randint(6, 14))) + " ." for _ in range(n)]


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def tone(freq: float, seconds: float = 0.5, rate: int = 16000, seed: int = 0):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype("float32")


def write_audio_classes(folder: Path, per_class: int = 4, rate: int = 16000) -> Path:
    """Two classes of tones (low and high pitch), one sub-folder per label."""
    import soundfile as sf

    for label, base in (("low", 220.0), ("high", 1760.0)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sf.write(folder / label / f"{label}_{i}.wav", tone(base * (1 + 0.03 * i), seed=i), rate)
    return folder


def write_asr_sample(folder: Path, n: int = 4, rate: int = 16000) -> Path:
    """Tone clips with short 'transcriptions' (a shape check, not speech) and a metadata.csv."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"clip_{i}.wav"
        sf.write(folder / name, tone(300.0 + 150 * i, seconds=1.0, seed=i), rate)
        rows.append({"file_name": name, "transcription": ["one", "two", "three", "four"][i % 4]})
    write_csv(folder / "metadata.csv", rows)
    return folder


def write_image_classes(folder: Path, per_class: int = 4, size: int = 32) -> Path:
    """Two classes of images (red and blue squares with noise), one sub-folder per label."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / label / f"{label}_{i}.png")
    return folder


def write_scene(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    """A synthetic picture for detection, segmentation and depth: shapes on a gradient."""
    import numpy as np
    from PIL import Image, ImageDraw

    w, h = size
    grad = np.linspace(0, 255, w, dtype="uint8")[None, :, None].repeat(h, 0).repeat(3, 2)
    image = Image.fromarray(grad)
    draw = ImageDraw.Draw(image)
    draw.rectangle([5, 5, w // 2, h // 2], fill=(200, 40, 40))
    draw.ellipse([w // 2, h // 3, w - 4, h - 4], fill=(40, 200, 40))
    image.save(path)
    return path
