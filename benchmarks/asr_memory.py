"""Peak memory of `tasktool infer asr` on a short vs a long recording: chunked streaming keeps it flat.

Each run is a separate `python -m tasktool infer asr FILE` process; its peak RSS is read from
os.wait4's rusage of that child alone. The recordings are the real LJ Speech clips repeated to
the wanted length (22.05 kHz FLAC), the models tiny random Whisper and Wav2Vec2-CTC.

    .venv/bin/python benchmarks/asr_memory.py            # 2, 5 and 10 minutes
    .venv/bin/python benchmarks/asr_memory.py --minutes 1 3

The first two batches of windows warm the allocator up (the shortest file may not fill them);
from then on the peak stays flat however many windows follow.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIPS = [ROOT / "tests/fixtures/audio/LJ001-0002.flac", ROOT / "tests/fixtures/audio/LJ001-0008.flac"]


def write_recording(path: Path, minutes: float, sr: int = 22050) -> Path:
    import numpy as np
    import soundfile as sf

    one = np.concatenate([sf.read(str(p), dtype="float32")[0] for p in CLIPS])
    total = int(minutes * 60 * sr)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, format="FLAC") as fh:
        written = 0
        while written < total:
            piece = one[: total - written]
            fh.write(piece)
            written += len(piece)
    return path


def peak_rss_mb(args: list[str]) -> tuple[float, float, int]:
    """Run one child; return (its peak RSS in MiB, wall seconds, exit code)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        print(err, file=sys.stderr)
    rss = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20
    return rss, time.perf_counter() - start, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, nargs="+", default=[2.0, 5.0, 10.0], help="recording lengths, shortest first"
    )
    parser.add_argument("--models", nargs="+", default=["wav2vec2-ctc", "whisper"])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=4,
        help="windows per model pass: peak memory follows this, not the file's length",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tasktool.tasks.registry import resolve

    with tempfile.TemporaryDirectory(prefix="asr-memory-") as tmp:
        tmp_path = Path(tmp)
        files = {m: write_recording(tmp_path / f"speech-{m:g}min.flac", m) for m in args.minutes}
        print(f"batch size {args.batch_size} (windows per pass)")
        print(f"{'model':<14}{'minutes':>8}{'peak RSS MiB':>14}{'seconds':>9}")
        for family in args.models:
            model = resolve("asr").build_tiny(tmp_path / family, family=family)
            peaks = []
            for minutes, path in files.items():
                cmd = [
                    sys.executable,
                    "-m",
                    "tasktool",
                    "infer",
                    "asr",
                    str(path),
                    "--model",
                    str(model),
                    "--output",
                    str(tmp_path / f"{family}-{minutes:g}.jsonl"),
                    "--quiet",
                    "--batch-size",
                    str(args.batch_size),
                ]
                rss, seconds, code = peak_rss_mb(cmd)
                if code:
                    raise SystemExit(f"{family} on {minutes:g} min failed (exit {code})")
                peaks.append(rss)
                print(f"{family:<14}{minutes:>8g}{rss:>14.1f}{seconds:>9.1f}")
            extra = (args.minutes[-1] - args.minutes[0]) * 60 * 16000 * 4 / 2**20
            print(
                f"{family:<14} ratio {args.minutes[-1]:g} min / {args.minutes[0]:g} min = "
                f"{peaks[-1] / peaks[0]:.3f} (+{peaks[-1] - peaks[0]:.1f} MiB; holding the extra audio alone "
                f"at 16 kHz float32 would add {extra:.1f} MiB)"
            )


if __name__ == "__main__":
    main()
