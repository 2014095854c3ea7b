"""Speech recognition (tiny Whisper, tiny Wav2Vec2-CTC) and audio classification on real clips, offline."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import FIXTURES, assert_user_error

AUDIO = FIXTURES / "audio"
CLIPS = [AUDIO / "LJ001-0002.flac", AUDIO / "LJ001-0002.wav", AUDIO / "LJ001-0002.mp3"]
LABELS = ["zero", "three", "seven", "nine"]


@pytest.fixture(scope="module")
def whisper(tiny):
    return tiny("asr", family="whisper")


@pytest.fixture(scope="module")
def ctc(tiny):
    return tiny("asr", family="wav2vec2-ctc")


@pytest.fixture(scope="module")
def classifier(tiny):
    return tiny("audio-classification", labels=LABELS)


@pytest.fixture(params=["whisper", "ctc"])
def asr_model(request):
    return request.getfixturevalue(request.param)


def _duration(path) -> float:
    info = sf.info(str(path))
    return info.frames / info.samplerate


def _ok(result) -> list[dict]:
    assert result.code == 0, result.err
    return result.records()


def _check_asr(records, paths):
    assert [r["input"] for r in records] == [str(p) for p in paths]
    assert [r["id"] for r in records] == list(range(len(paths)))
    for r, path in zip(records, paths, strict=True):
        assert "error" not in r
        assert isinstance(r["text"], str)
        assert r["duration"] == pytest.approx(_duration(path), abs=1e-3)


def _long_file(path, seconds: float, sr: int = 22050):
    """A long recording made of the real clips, repeated."""
    pieces = [
        sf.read(str(p), dtype="float32")[0] for p in (AUDIO / "LJ001-0002.flac", AUDIO / "LJ001-0008.flac")
    ]
    one = np.concatenate(pieces)
    audio = np.tile(one, int(np.ceil(seconds * sr / len(one))))[: int(seconds * sr)]
    sf.write(str(path), audio, sr)
    return path


def test_asr_transcribes_flac_wav_and_mp3(cli, asr_model):
    _check_asr(_ok(cli("infer", "asr", *CLIPS, "--model", asr_model)), CLIPS)


def test_same_recording_in_flac_and_wav_gives_the_same_text(cli, ctc):
    records = _ok(cli("infer", "asr", CLIPS[0], CLIPS[1], "--model", ctc))
    assert records[0]["text"] == records[1]["text"]


def test_folder_input_gives_one_record_per_audio_file_sorted(cli, ctc, classifier):
    files = sorted(p for p in AUDIO.iterdir() if p.suffix in (".wav", ".flac", ".mp3"))
    _check_asr(_ok(cli("infer", "asr", AUDIO, "--model", ctc)), files)
    records = _ok(cli("infer", "audio-classification", AUDIO, "--model", classifier))
    assert [r["input"] for r in records] == [str(p) for p in files]


def test_audio_classification_gives_top_k_labels_of_the_model(cli, classifier):
    files = [*CLIPS, AUDIO / "3_jackson_5.wav", AUDIO / "7_george_5.wav"]
    records = _ok(cli("infer", "audio-classification", *files, "--model", classifier))
    for r in records:
        assert r["label"] in LABELS and 0.0 <= r["score"] <= 1.0
        assert len(r["labels"]) == len(LABELS)  # default top-5, capped at the 4 labels
        scores = [x["score"] for x in r["labels"]]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert {x["label"] for x in r["labels"]} == set(LABELS)
        assert r["labels"][0] == {"label": r["label"], "score": r["score"]}
    two = _ok(cli("infer", "audio-classification", *files, "--model", classifier, "--top-k", "2"))
    assert all(len(r["labels"]) == 2 for r in two)


@pytest.mark.parametrize(
    "task,model", [("asr", "whisper"), ("asr", "ctc"), ("audio-classification", "classifier")]
)
def test_batched_equals_unbatched(cli, request, task, model):
    folder = request.getfixturevalue(model)
    files = [*CLIPS, AUDIO / "3_jackson_5.wav", AUDIO / "LJ001-0008.flac"]
    one = _ok(cli("infer", task, *files, "--model", folder, "--batch-size", "1"))
    many = _ok(cli("infer", task, *files, "--model", folder, "--batch-size", "4"))
    if task == "asr":
        assert [r["text"] for r in one] == [r["text"] for r in many]
        assert any(r["text"] for r in one)
    else:
        assert [r["label"] for r in one] == [r["label"] for r in many]
        for a, b in zip(one, many, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)


@pytest.fixture
def bad_files(tmp_path):
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(CLIPS[0].read_bytes()[:20000])
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    return [truncated, text, empty]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_bad_audio_file_is_a_one_line_error_naming_it(cli, ctc, bad_files, which):
    bad = bad_files[which]
    result = cli("infer", "asr", CLIPS[0], bad, "--model", ctc)
    assert_user_error(result, "cannot decode audio", bad.name)


def test_on_error_skip_records_the_bad_files_and_finishes_the_rest(cli, ctc, classifier, bad_files):
    inputs = [CLIPS[0], *bad_files, CLIPS[1]]
    for task, model in (("asr", ctc), ("audio-classification", classifier)):
        records = _ok(cli("infer", task, *inputs, "--model", model, "--on-error", "skip"))
        assert [r["input"] for r in records] == [str(p) for p in inputs]
        for r, path in zip(records[1:4], bad_files, strict=True):
            assert "cannot decode audio" in r["error"] and path.name in r["error"]
        assert "error" not in records[0] and "error" not in records[4]


def test_stereo_is_mixed_down_to_mono(cli, ctc, tmp_path):
    from tasktool.io.audio import load_audio

    mono, sr = sf.read(str(CLIPS[1]), dtype="float32")
    noise = np.random.default_rng(0).normal(0, 0.05, mono.shape).astype("float32")
    stereo = tmp_path / "stereo.wav"
    sf.write(str(stereo), np.stack([mono + noise, mono - noise], axis=1), sr, subtype="FLOAT")
    same = tmp_path / "mono.wav"
    sf.write(str(same), mono, sr, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(str(stereo), 16000), load_audio(str(same), 16000), atol=1e-5)
    records = _ok(cli("infer", "asr", stereo, same, "--model", ctc))
    assert records[0]["text"] == records[1]["text"]
    assert records[0]["duration"] == pytest.approx(len(mono) / sr, abs=1e-3)


def test_streamed_blocks_match_the_whole_file_decode():
    from tasktool.io.audio import iter_audio_blocks, load_audio

    whole = load_audio(str(AUDIO / "LJ001-0008.flac"), 16000)
    streamed = np.concatenate(
        list(iter_audio_blocks(str(AUDIO / "LJ001-0008.flac"), 16000, block_seconds=0.3))
    )
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_overlapping_windows_cover_the_signal_exactly_once():
    from tasktool.io.audio import iter_windows

    signal = np.arange(10_000, dtype=np.float32)
    blocks = iter(np.array_split(signal, 7))
    kept = [w[left : len(w) - right] for w, left, right, _ in iter_windows(blocks, 1200, 200, 200)]
    np.testing.assert_array_equal(np.concatenate(kept), signal)


def test_long_recording_is_transcribed_in_chunks_with_timestamps(cli, ctc, whisper, tmp_path):
    long = _long_file(tmp_path / "long.flac", 45.0)
    for model, extra in ((ctc, ["--chunk-length", "5"]), (whisper, [])):
        (record,) = _ok(cli("infer", "asr", long, "--model", model, "--return-timestamps", *extra))
        assert record["duration"] == pytest.approx(45.0, abs=1e-3)
        assert isinstance(record["text"], str) and record["text"]
        starts = [c["timestamp"][0] for c in record["chunks"]]
        assert record["chunks"] and starts == sorted(starts)
        for chunk in record["chunks"]:
            start, end = chunk["timestamp"]
            assert 0.0 <= start <= end <= 45.0 and isinstance(chunk["text"], str)
    # CTC: the stitched chunks span the whole recording, not just the first window
    (ctc_record,) = _ok(
        cli("infer", "asr", long, "--model", ctc, "--chunk-length", "5", "--return-timestamps")
    )
    assert ctc_record["chunks"][-1]["timestamp"][1] > 40.0


def test_url_input_is_downloaded_and_transcribed(cli, ctc):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(AUDIO))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/LJ001-0002.flac"
        records = _ok(cli("infer", "asr", url, CLIPS[0], "--model", ctc))
    finally:
        server.shutdown()
    assert records[0]["input"] == url
    assert records[0]["text"] == records[1]["text"]
    assert records[0]["duration"] == pytest.approx(_duration(CLIPS[0]), abs=1e-3)


def test_whisper_language_must_be_one_the_model_knows(cli, whisper):
    assert_user_error(
        cli("infer", "asr", CLIPS[0], "--model", whisper, "--language", "klingon"), "--language"
    )
    assert (
        _ok(cli("infer", "asr", CLIPS[0], "--model", whisper, "--language", "german"))[0]["text"] is not None
    )


def test_long_recording_cut_short_fails_alone_while_streaming(cli, ctc, tmp_path):
    long = _long_file(tmp_path / "long.flac", 30.0)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(long.read_bytes()[: long.stat().st_size // 2])
    records = _ok(
        cli("infer", "asr", CLIPS[0], cut, "--model", ctc, "--chunk-length", "5", "--on-error", "skip")
    )
    assert "error" not in records[0] and records[0]["text"]
    assert "cannot decode audio 'cut.flac'" in records[1]["error"]
    assert_user_error(cli("infer", "asr", cut, "--model", ctc, "--chunk-length", "5"), "cut.flac")


def test_streaming_memory_does_not_grow_with_the_recording_length(ctc, tmp_path):
    """Python/numpy peak (tracemalloc) while transcribing 1 vs 3 minutes: the audio is never held whole."""
    import tracemalloc

    from tasktool.engine import Engine, Item
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve
    from tasktool.tasks.speech_recognition.predict import SpeechRecognition

    predictor = SpeechRecognition(
        resolve("asr"), InferOptions(model=str(ctc), device="cpu", chunk_length=5.0, batch_size=1)
    )
    peaks = {}
    for minutes in (1, 3):
        path = _long_file(tmp_path / f"speech-{minutes}.flac", minutes * 60.0)
        tracemalloc.start()
        try:
            (record,) = Engine(predictor, batch_size=1).run([Item(0, str(path))])
            peaks[minutes] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert record["duration"] == pytest.approx(minutes * 60.0, abs=1e-3) and record["text"]
    whole = 3 * 60 * 16000 * 4  # the resampled 3-minute recording alone, in bytes
    assert peaks[3] < 1.3 * peaks[1], peaks
    assert peaks[3] < whole / 2, peaks


def test_a_model_of_the_other_audio_task_is_refused_in_one_line(cli, ctc, classifier):
    assert_user_error(cli("infer", "asr", CLIPS[0], "--model", classifier), "audio-classification model")
    assert_user_error(
        cli("infer", "audio-classification", CLIPS[0], "--model", ctc), "speech-recognition model"
    )
