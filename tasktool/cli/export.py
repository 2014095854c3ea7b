"""`tasktool export`: a task's model as an ONNX graph for ONNX Runtime (optionally optimized, int8)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasktool.cli.common import ModelOpt, PickleOpt, RevisionOpt, TaskArg, TrustOpt

HELP = """Export a model for ONNX Runtime: a folder `tasktool infer` runs like the torch model.

Examples:

  tasktool export sentiment --model my-model --format onnx -o my-model-onnx

  tasktool export ner --model ner-model --optimize O2 --quantize int8 -o ner-int8

  tasktool infer ner --model ner-int8 --file news.txt

  tasktool export summarize --model my-bart --quantize int8 -o bart-int8

Generators (GPT-2/Llama-style decoders; BART, T5, Marian, Whisper) export as graphs with a
key/value cache that transformers' generate drives; --optimize applies to the encoder tasks.
"""

OutDirOpt = Annotated[
    Path,
    typer.Option("--output-dir", "-o", help="The new folder to write (must not exist).", show_default=False),
]
ExportFormatOpt = Annotated[str, typer.Option("--format", help="Export format: onnx.")]
OptimizeOpt = Annotated[
    str | None,
    typer.Option(
        "--optimize",
        help="O1: ONNX Runtime's basic graph optimizations; O2: O1 + transformer fusions (attention, "
        "embeddings, GELU); O3: O2 + approximate GELU.",
    ),
]
QuantizeOpt = Annotated[
    str | None, typer.Option("--quantize", help="int8: dynamic quantization of the weights (CPU).")
]


def export(
    task: TaskArg,
    output_dir: OutDirOpt,
    model: ModelOpt = None,
    fmt: ExportFormatOpt = "onnx",
    optimize: OptimizeOpt = None,
    quantize: QuantizeOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: PickleOpt = False,
):
    from tasktool.api import export as run_export
    from tasktool.cli.common import check_choice
    from tasktool.console import info
    from tasktool.export import OPTIMIZE_LEVELS, QUANTIZE_MODES

    check_choice("--format", fmt, ("onnx",))
    if optimize is not None:
        check_choice("--optimize", optimize, OPTIMIZE_LEVELS)
    if quantize is not None:
        check_choice("--quantize", quantize, QUANTIZE_MODES)
    manifest = run_export(
        task,
        model,
        output_dir=output_dir,
        format=fmt,
        optimize=optimize,
        quantize=quantize,
        revision=revision,
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
    )
    files = ", ".join(f"{kind} {name}" for kind, name in manifest["files"].items())
    info(f"exported {manifest['task']} to {output_dir} ({files}; infer runs {manifest['default']})")


def register(app: typer.Typer) -> None:
    app.command("export", help=HELP, no_args_is_help=True)(export)
