"""Audio decoding: soundfile reads (wav/flac/ogg/mp3), soxr resamples, mono float32 out.

No ffmpeg/torchaudio is needed. A bad file raises ItemError naming the file, so the engine can
skip it alone. Long files are read block by block (`iter_audio_blocks`) through a streaming
resampler, so their memory stays bounded whatever their length.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tasktool.errors import ItemError, first_line


def is_url(value: str) -> bool:
    return str(value).startswith(("http://", "https://"))


def _name(path) -> str:
    return Path(str(path)).name if not is_url(str(path)) else str(path)


def _fail(path, exc: BaseException) -> ItemError:
    text = first_line(exc)
    return ItemError(
        f"cannot decode audio '{_name(path)}': {text}",
        "check the file is a complete wav/flac/ogg/mp3 recording",
    )


@contextlib.contextmanager
def local_file(path_or_url: str):
    """A local path for the input: URLs are downloaded to a temporary file, removed afterwards."""
    if not is_url(path_or_url):
        yield str(path_or_url)
        return
    from tasktool.io.media import download_to_temp

    tmp = download_to_temp(path_or_url)
    try:
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def audio_info(path: str) -> tuple[int, int]:
    """(frames, sampling rate) of a local file, read from its header only."""
    import soundfile as sf

    if not os.path.exists(path):
        raise ItemError(f"audio file '{_name(path)}' not found", "check the path")
    if os.path.getsize(path) == 0:
        raise ItemError(f"cannot decode audio '{_name(path)}': the file is empty (0 bytes)")
    try:
        info = sf.info(path)
    except Exception as exc:  # libsndfile raises several types for unreadable files
        raise _fail(path, exc) from exc
    if info.frames <= 0:
        raise ItemError(f"cannot decode audio '{_name(path)}': it holds no samples")
    return int(info.frames), int(info.samplerate)


def _mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1, dtype=np.float32) if data.ndim == 2 and data.shape[1] > 1 else data.reshape(-1)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path_or_url: str, sampling_rate: int) -> np.ndarray:
    """The whole recording as mono float32 at `sampling_rate` (stereo is averaged)."""
    import soundfile as sf

    with local_file(path_or_url) as path:
        frames, sr = audio_info(path)
        try:
            data, sr = sf.read(path, dtype="float32", always_2d=True)
        except Exception as exc:
            raise _fail(path_or_url, exc) from exc
        if data.shape[0] == 0:
            raise ItemError(f"cannot decode audio '{_name(path_or_url)}': it holds no samples")
        _check_finite(data, path_or_url)
        return resample(_mono(data), sr, sampling_rate)


def _check_finite(samples: np.ndarray, path) -> None:
    """Float recordings can hold NaN/Infinity samples; a model fed them answers NaN."""
    if not np.isfinite(samples).all():
        raise ItemError(f"audio '{_name(path)}' holds NaN or infinite samples", "re-export the recording")


def iter_audio_blocks(path: str, sampling_rate: int, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `sampling_rate`, read and resampled incrementally (bounded memory)."""
    import soundfile as sf

    audio_info(path)
    try:
        with sf.SoundFile(path) as fh:
            sr = fh.samplerate
            blocksize = max(1, int(block_seconds * sr))
            stream = None
            if sr != sampling_rate:
                import soxr

                stream = soxr.ResampleStream(sr, sampling_rate, 1, dtype="float32", quality="HQ")
            for block in fh.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                _check_finite(block, path)
                mono = _mono(block)
                out = stream.resample_chunk(mono, last=False) if stream else mono
                if out.size:
                    yield out
            if stream:
                tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                if tail.size:
                    yield tail
    except ItemError:
        raise
    except Exception as exc:
        raise _fail(path, exc) from exc


def iter_windows(
    blocks: Iterator[np.ndarray], chunk: int, left: int, right: int
) -> Iterator[tuple[np.ndarray, int, int, int]]:
    """Overlapping windows over a block stream: (samples, stride_left, stride_right, start_sample).

    Each window is `chunk` samples (the last may be shorter); consecutive windows share
    `left + right` samples, the context that is dropped again when the pieces are stitched.
    Only about one window of audio is held at a time.
    """
    step = chunk - left - right
    if step <= 0:
        raise ValueError("chunk must be longer than both strides together")
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # sample index of buffer[0]
    start = 0
    exhausted = False
    while True:
        while not exhausted and offset + len(buffer) < start + chunk + 1:
            block = next(blocks, None)
            if block is None:
                exhausted = True
            else:
                buffer = np.concatenate([buffer, block])
        end_available = offset + len(buffer)
        window = buffer[start - offset : start - offset + chunk]
        is_last = exhausted and start + chunk >= end_available
        stride_left = 0 if start == 0 else left
        stride_right = 0 if is_last else right
        if len(window) > stride_left or start == 0:
            yield window.copy(), stride_left, stride_right, start
        if is_last:
            return
        start += step
        drop = start - offset
        buffer = buffer[drop:]
        offset = start


def padding_groups(lengths: list[int], pad_ok: bool) -> list[list[int]]:
    """Indices to run together: all of them when padding is masked, else only equal lengths."""
    if pad_ok:
        return [list(range(len(lengths)))] if lengths else []
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(n, []).append(i)
    return list(groups.values())
