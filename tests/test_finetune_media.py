"""Fine-tuning and evaluating speech recognition, audio classification and image classification.

Tiny random models learn synthetic tasks (tones of two pitches, red vs blue images, four repeated
clips for CTC); real samples (spoken digits, CIFAR cats/dogs, LJ Speech) run end to end offline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sample_data as samples
from conftest import FIXTURES, assert_user_error

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out

MEDIA = FIXTURES / "media_train"


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def _evaluate(cli, task, model, data, tmp_path, *extra) -> dict:
    target = tmp_path / f"eval-{abs(hash((str(model), str(data))))}.json"
    result = cli("evaluate", task, "--model", model, "--data", data, "--output", target, *extra)
    assert result.code == 0, result.err
    return json.loads(target.read_text())


def _eval_tones(folder: Path) -> Path:
    """Held-out tones: pitches and noise the training folder does not have."""
    import soundfile as sf

    for label, base in (("low", 220.0), ("high", 1760.0)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            sf.write(
                folder / label / f"{label}_eval_{i}.wav",
                samples.tone(base * (1.015 + 0.03 * i), seed=100 + i),
                16000,
            )
    return folder


def _eval_images(folder: Path) -> Path:
    """Held-out red and blue images: other noise and another size than the training ones."""
    from PIL import Image

    rng = np.random.default_rng(7)
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (40, 48, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / label / f"{label}_eval_{i}.png")
    return folder


# ---------------------------------------------------------------------- learning on synthetic data


def test_audio_classifier_goes_from_chance_to_separating_two_pitches(cli, tiny, tmp_path):
    base = tiny("audio-classification", labels=["high", "low"])
    train = samples.write_audio_classes(tmp_path / "tones", per_class=8)
    held_out = _eval_tones(tmp_path / "eval")
    before = _evaluate(cli, "audio-classification", base, held_out, tmp_path)
    out = tmp_path / "out"
    result = cli(
        "finetune",
        "audio-classification",
        "--data",
        train,
        "--eval-data",
        held_out,
        "--model",
        base,
        "-o",
        out,
        "--quiet",
        "epochs=10",
        "lr=3e-3",
        "batch_size=4",
        "freeze_feature_encoder=false",
    )
    assert result.code == 0, result.err
    after = _metrics(out)["eval"]
    assert before["accuracy"] <= 0.75 < 0.9 <= after["accuracy"], (before, after)
    assert after["examples"] == 8 and "top5_accuracy" not in after  # 2 classes: top-5 would always be 1.0
    assert (out / "confusion_matrix.png").stat().st_size > 0


def test_vit_goes_from_chance_to_separating_red_and_blue(cli, tiny, tmp_path):
    base = tiny("image-classification", labels=["blue", "red"])
    train = samples.write_image_classes(tmp_path / "images", per_class=8)
    held_out = _eval_images(tmp_path / "eval")
    before = _evaluate(cli, "image-classification", base, held_out, tmp_path)
    out = tmp_path / "out"
    result = cli(
        "finetune",
        "image-classification",
        "--data",
        train,
        "--eval-data",
        held_out,
        "--model",
        base,
        "-o",
        out,
        "--quiet",
        "epochs=5",
        "lr=3e-3",
        "batch_size=4",
    )
    assert result.code == 0, result.err
    after = _metrics(out)["eval"]
    assert before["accuracy"] <= 0.75 < 0.9 <= after["accuracy"], (before, after)
    # the folder is an image classifier for `tasktool infer`
    shown = cli("infer", "image-classification", held_out / "red", "--model", out, "--format", "jsonl")
    assert shown.code == 0, shown.err
    assert {r["label"] for r in shown.records()} == {"red"}


PITCH = {"a": 300.0, "b": 500.0, "c": 800.0, "d": 1200.0, "e": 1800.0}


def _letter_clips(folder: Path, texts=("bad cab", "ace bead", "dab", "cede bed")) -> Path:
    """'Speech' a CTC model can learn in seconds: one tone pitch per letter, silence between words."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, text in enumerate(texts):
        parts = []
        for i, ch in enumerate(text):
            if ch == " ":
                parts.append(np.zeros(3200, "float32"))
            else:
                parts += [samples.tone(PITCH[ch], seconds=0.12, seed=i), np.zeros(640, "float32")]
        sf.write(folder / f"c{n}.wav", np.concatenate(parts), 16000)
        rows.append({"file_name": f"c{n}.wav", "transcription": text})
    samples.write_csv(folder / "metadata.csv", rows)
    return folder


def test_ctc_loss_halves_and_wer_falls_on_repeated_clips(cli, tiny, tmp_path):
    base = tiny("automatic-speech-recognition", family="wav2vec2-ctc")
    clips = _letter_clips(tmp_path / "clips")
    before = _evaluate(cli, "asr", base, clips, tmp_path)
    out = tmp_path / "out"
    result = cli(
        "finetune",
        "asr",
        "--data",
        clips,
        "--eval-data",
        clips,
        "--model",
        base,
        "-o",
        out,
        "--quiet",
        "max_steps=120",
        "lr=1e-2",
        "lr_scheduler=constant",
        "batch_size=4",
        "warmup_ratio=0",
        "logging_steps=10",
        "eval_steps=40",
        "freeze_feature_encoder=false",
    )
    assert result.code == 0, result.err
    losses = _losses(out)
    assert losses[-1] <= losses[0] / 2, losses
    after = _metrics(out)["eval"]
    assert after["wer"] < before["wer"] and after["cer"] < before["cer"] / 2, (before, after)


def test_ctc_base_without_tokenizer_gets_a_vocabulary_from_the_transcripts(cli, tiny, tmp_path):
    from transformers import AutoFeatureExtractor

    full = tiny("automatic-speech-recognition", family="wav2vec2-ctc")
    base = tmp_path / "pretrained-only"
    base.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(full / name, base / name)
    AutoFeatureExtractor.from_pretrained(full).save_pretrained(base)
    clips = samples.write_asr_sample(tmp_path / "clips", n=4)
    out = tmp_path / "out"
    result = cli(
        "finetune",
        "asr",
        "--data",
        clips,
        "--eval-data",
        clips,
        "--model",
        base,
        "-o",
        out,
        "--quiet",
        "max_steps=2",
    )
    assert result.code == 0, result.err
    vocab = json.loads((out / "vocab.json").read_text())
    assert set(vocab) - {"<pad>", "<s>", "</s>", "<unk>", "|"} == set("onetwothreefour")
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(vocab)
    shown = cli("infer", "asr", clips / "clip_0.wav", "--model", out, "--format", "jsonl")
    assert shown.code == 0, shown.err
    assert set(shown.records()[0]["text"]) <= set("onetwothreefour ")


# ---------------------------------------------------------------------- the real samples, end to end


@pytest.mark.parametrize(
    ("task", "data", "labels"),
    [("audio-classification", "fsdd", {"0", "1", "2"}), ("image-classification", "cifar10", {"cat", "dog"})],
)
def test_real_samples_train_offline_and_the_folder_serves_infer_and_evaluate(
    cli, tiny, tmp_path, task, data, labels
):
    base = tiny(task)  # its own label set differs: the head is replaced by one for the data's labels
    out = tmp_path / "out"
    result = cli(
        "finetune",
        task,
        "--data",
        MEDIA / data,
        "--model",
        base,
        "-o",
        out,
        "--quiet",
        "max_steps=3",
        "batch_size=2",
        "eval_fraction=0.34",
    )
    assert result.code == 0, result.err
    summary = _metrics(out)
    assert {"accuracy", "macro_f1"} <= set(summary["eval"]) and "top5_accuracy" not in summary["eval"]
    assert summary["train"]["global_step"] == 3 and summary["train"]["eval_examples"] == len(labels)
    for name in ("README.md", "loss_curve.png", "confusion_matrix.png", "recipe.yaml", "eval.jsonl"):
        assert (out / name).stat().st_size > 0, name
    assert "confusion_matrix.png" in (out / "README.md").read_text()
    config = json.loads((out / "config.json").read_text())
    assert set(config["id2label"].values()) == labels
    # evaluate on the saved held-out split reproduces metrics.json
    again = _evaluate(cli, task, out, out / "eval.jsonl", tmp_path)
    assert again["accuracy"] == summary["eval"]["accuracy"]
    first = next(p for p in sorted((MEDIA / data).rglob("*")) if p.is_file())
    shown = cli("infer", task, first, "--model", out, "--format", "jsonl")
    assert shown.code == 0, shown.err
    assert shown.records()[0]["label"] in labels


def test_whisper_on_ljspeech_clips_trains_offline_with_language_and_task_in_the_prompt(cli, tiny, tmp_path):
    base = tiny("automatic-speech-recognition")  # tiny Whisper
    out = tmp_path / "out"
    clips = MEDIA / "ljspeech"
    result = cli(
        "finetune",
        "asr",
        "--data",
        clips,
        "--eval-data",
        clips,
        "--model",
        base,
        "-o",
        out,
        "--quiet",
        "max_steps=3",
        "batch_size=2",
        "language=en",
        "generation_max_new_tokens=20",
    )
    assert result.code == 0, result.err
    summary = _metrics(out)
    assert {"wer", "cer"} <= set(summary["eval"]) and summary["eval"]["examples"] == 2
    assert summary["train"]["global_step"] == 3
    for name in ("README.md", "loss_curve.png", "recipe.yaml", "generation_config.json"):
        assert (out / name).stat().st_size > 0, name
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["language"] == "en" and gen["task"] == "transcribe"
    shown = cli(
        "infer",
        "asr",
        clips / "LJ001-0008.flac",
        "--model",
        out,
        "--format",
        "jsonl",
        "--max-new-tokens",
        "5",
    )
    assert shown.code == 0, shown.err
    assert isinstance(shown.records()[0]["text"], str)


def test_whisper_labels_carry_the_language_and_task_prompt(tiny):
    from tasktool.tasks.registry import resolve
    from tasktool.tasks.speech_recognition.train import Trainer as SpeechRecognitionTrainer

    trainer = SpeechRecognitionTrainer(resolve("asr"), {"language": "de"}, quiet=True)
    processor = trainer.load_processor(str(tiny("automatic-speech-recognition")))
    tok = processor.tokenizer
    ids = trainer._labels("hallo welt")
    prompt = tok.convert_ids_to_tokens(ids[:4])
    assert prompt == ["<|startoftranscript|>", "<|de|>", "<|transcribe|>", "<|notimestamps|>"]
    assert tok.decode(ids, skip_special_tokens=True).strip() == "hallo welt"


# ---------------------------------------------------------------------- bad files


def _with_corrupt_audio(tmp_path: Path) -> Path:
    folder = samples.write_audio_classes(tmp_path / "tones", per_class=3)
    (folder / "low" / "empty.wav").write_bytes(b"")
    (folder / "high" / "noise.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    return folder


def _with_corrupt_images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    shutil.copytree(MEDIA / "cifar10", folder)
    (folder / "cat" / "broken.png").write_bytes(b"not a png at all")
    whole = (folder / "dog" / "0000.jpg").read_bytes()
    (folder / "dog" / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    return folder


@pytest.mark.parametrize("kind", ["audio", "image"])
def test_corrupt_training_files_are_skipped_with_a_count_or_stop_the_run_with_strict(
    cli, tiny, tmp_path, kind
):
    if kind == "audio":
        task, base = "audio-classification", tiny("audio-classification", labels=["high", "low"])
        data, clean, total = (
            _with_corrupt_audio(tmp_path),
            samples.write_audio_classes(tmp_path / "clean", 2),
            8,
        )
    else:
        task, base = "image-classification", tiny("image-classification")
        data, clean, total = _with_corrupt_images(tmp_path), MEDIA / "cifar10", 8
    run = cli(
        "finetune",
        task,
        "--data",
        data,
        "--eval-data",
        clean,
        "--model",
        base,
        "-o",
        tmp_path / "out",
        "max_steps=2",
        "batch_size=4",
    )
    assert run.code == 0, run.err
    assert f"skipped 2 of {total} training {kind} file(s)" in " ".join(run.err.split())
    assert _metrics(tmp_path / "out")["train"]["train_examples"] == total - 2
    strict = cli(
        "finetune",
        task,
        "--data",
        data,
        "--eval-data",
        clean,
        "--model",
        base,
        "-o",
        tmp_path / "out2",
        "--strict",
        "max_steps=2",
    )
    assert_user_error(strict, "2 of", "cannot be read", "without --strict")
    assert not (tmp_path / "out2" / "config.json").exists()


def test_a_file_that_breaks_after_the_check_is_replaced_not_fatal(tiny, tmp_path):
    from tasktool.tasks.vision import load_image_processor
    from tasktool.training.media import ImageDataset

    folder = samples.write_image_classes(tmp_path / "images", per_class=2)
    examples = [{"path": str(p), "label": p.parent.name} for p in sorted(folder.rglob("*.png"))]
    dataset = ImageDataset(
        examples, {"blue": 0, "red": 1}, load_image_processor(str(tiny("image-classification"))), train=True
    )
    Path(examples[0]["path"]).write_bytes(b"garbage")  # broken after the up-front check
    item = dataset[0]
    assert item["labels"] == 0 and tuple(item["pixel_values"].shape) == (3, 32, 32)  # the next blue image


def test_clips_shorter_than_a_specaugment_span_train_without_error(cli, tiny, tmp_path):
    import soundfile as sf

    for label, pitch in (("low", 300.0), ("high", 1500.0)):
        (tmp_path / "short" / label).mkdir(parents=True)
        for i in range(2):
            sf.write(tmp_path / "short" / label / f"{i}.wav", samples.tone(pitch, seconds=0.1, seed=i), 16000)
    base = tiny("audio-classification", labels=["high", "low"])
    run = cli(
        "finetune",
        "audio-classification",
        "--data",
        tmp_path / "short",
        "--eval-data",
        tmp_path / "short",
        "--model",
        base,
        "-o",
        tmp_path / "out",
        "--quiet",
        "max_steps=2",
        "freeze_feature_encoder=false",
    )
    assert run.code == 0, run.err
    assert _metrics(tmp_path / "out")["train"]["global_step"] == 2


def test_evaluation_skips_unreadable_files_and_counts_them(cli, tiny, tmp_path):
    base = tiny("audio-classification", labels=["high", "low"])
    folder = _with_corrupt_audio(tmp_path)
    metrics = _evaluate(cli, "audio-classification", base, folder, tmp_path)
    assert metrics["examples"] == 6 and metrics["skipped"] == 2
    strict = cli("evaluate", "audio-classification", "--model", base, "--data", folder, "--strict")
    assert_user_error(strict, "cannot decode audio")


# ---------------------------------------------------------------------- data formats


def test_metadata_files_manifests_and_column_flags(tmp_path):
    import soundfile as sf

    from tasktool.io.media import read_examples
    from tasktool.io.readers import Source

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(2):
        sf.write(clips / f"c{i}.wav", samples.tone(300.0 + 100 * i), 16000)
    (clips / "metadata.jsonl").write_text(
        "".join(
            json.dumps({"file_name": f"c{i}.wav", "transcription": w}) + "\n"
            for i, w in enumerate(["yes", "no"])
        )
    )
    folder = read_examples(Source(str(clips)), "audio", "text")
    assert [(Path(e["path"]), e["text"]) for e in folder] == [
        (clips / "c0.wav", "yes"),
        (clips / "c1.wav", "no"),
    ]
    manifests = tmp_path / "lists"
    manifests.mkdir()
    samples.write_csv(manifests / "train.csv", [{"wav": "../clips/c1.wav", "digit": 7}])
    rows = read_examples(
        Source(str(manifests / "train.csv")),
        "audio",
        "label",
        path_column="wav",
        target_column="digit",
        allow_outside=True,  # '../clips' leaves the manifest's folder: --allow-absolute-paths
    )
    assert Path(rows[0]["path"]).resolve() == (clips / "c1.wav").resolve() and rows[0]["label"] == "7"


def test_missing_columns_and_folders_without_metadata_are_one_line_errors(cli, tiny, tmp_path):
    manifest = samples.write_csv(tmp_path / "m.csv", [{"clip": "a.wav", "label": "x"}])
    result = cli(
        "finetune",
        "audio-classification",
        "--data",
        manifest,
        "--model",
        tiny("audio-classification"),
        "-o",
        tmp_path / "o",
    )
    assert_user_error(result, "columns found: clip, label", "--path-column")
    (tmp_path / "flat").mkdir()
    result = cli(
        "finetune", "asr", "--data", tmp_path / "flat", "--model", tiny("asr"), "-o", tmp_path / "o2"
    )
    assert_user_error(result, "metadata.csv", "transcription")


def test_saved_datasets_with_audio_and_image_features_are_read_without_decoding(tmp_path, monkeypatch):
    """Hub-style datasets: ClassLabel ids become names, embedded audio/image bytes become cached files
    (datasets' own Audio decoding would need torchcodec)."""
    import datasets
    import soundfile as sf
    from PIL import Image

    from tasktool.io.media import read_examples
    from tasktool.io.readers import Source

    monkeypatch.setenv("TASKTOOL_CACHE", str(tmp_path / "cache"))
    folder = samples.write_image_classes(tmp_path / "images", per_class=1)
    paths = [str(p) for p in sorted(folder.rglob("*.png"))]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["blue", "red"])}
    )
    datasets.Dataset.from_dict({"image": paths, "label": [0, 1]}, features=features).save_to_disk(
        str(tmp_path / "img")
    )
    shutil.rmtree(folder)  # the saved dataset must hold the bytes itself
    rows = read_examples(Source(str(tmp_path / "img"), "train"), "image", "label")
    assert [r["label"] for r in rows] == ["blue", "red"]
    assert Image.open(rows[0]["path"]).size == (32, 32)

    clips = sorted((MEDIA / "fsdd").rglob("*.wav"))[:2]
    cells = [{"path": p.name, "bytes": p.read_bytes()} for p in clips]
    ds = datasets.Dataset.from_dict({"audio": cells, "digit": [0, 1]})
    ds = ds.cast_column("audio", datasets.Audio()).cast_column(
        "digit", datasets.ClassLabel(names=["zero", "one"])
    )
    ds.save_to_disk(str(tmp_path / "audio"))
    rows = read_examples(Source(str(tmp_path / "audio"), "train"), "audio", "label", target_column="digit")
    assert [r["label"] for r in rows] == ["zero", "one"]
    assert Path(rows[0]["path"]).parent == tmp_path / "cache" / "media"
    assert sf.read(rows[0]["path"])[0].shape == sf.read(clips[0])[0].shape


def test_max_audio_seconds_cuts_for_classification_and_drops_for_asr(tmp_path):
    import soundfile as sf

    from tasktool.training.media import decode_audio

    sf.write(tmp_path / "long.wav", samples.tone(440.0, seconds=2.0), 16000)
    sf.write(tmp_path / "short.wav", samples.tone(440.0, seconds=0.5), 16000)
    examples = [{"path": str(tmp_path / "long.wav")}, {"path": str(tmp_path / "short.wav")}]
    kept, audios = decode_audio(examples, 16000, max_seconds=1.0, truncate=True)
    assert [len(a) for a in audios] == [16000, 8000]
    kept, audios = decode_audio(examples, 16000, max_seconds=1.0, truncate=False)
    assert [Path(e["path"]).name for e in kept] == ["short.wav"]


def test_augmentation_is_random_for_training_and_off_for_evaluation(tiny, tmp_path):
    from tasktool.tasks.vision import load_image_processor
    from tasktool.training.media import ImageDataset

    examples = [{"path": str(MEDIA / "cifar10" / "cat" / "0000.jpg"), "label": "cat"}]
    processor = load_image_processor(str(tiny("image-classification")))
    evaluation = ImageDataset(examples, {"cat": 0}, processor, train=False)
    training = ImageDataset(examples, {"cat": 0}, processor, train=True, seed=1)
    plain = [evaluation[0]["pixel_values"] for _ in range(3)]
    assert all((p == plain[0]).all() for p in plain)
    from PIL import Image

    expected = processor(images=Image.open(examples[0]["path"]).convert("RGB"), return_tensors="pt")[
        "pixel_values"
    ][0]
    assert (plain[0] == expected).all()  # evaluation sees what `tasktool infer` sees
    augmented = [training[0]["pixel_values"] for _ in range(4)]
    assert any(not (a == plain[0]).all() for a in augmented)
    assert all(a.shape == plain[0].shape for a in augmented)


def test_scoring_ignores_case_punctuation_and_spacing():
    from tasktool.tasks.speech_recognition.evaluate import asr_metrics, normalize_text

    assert normalize_text('  Hello,   World! It\'s "fine".') == "hello world it's fine"
    scores = asr_metrics(["hello world"], ["Hello, World!"])
    assert scores["wer"] == 0.0 and scores["cer"] == 0.0 and scores["wer_unnormalized"] == 1.0
