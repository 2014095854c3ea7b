"""`tasktool tasks` and `tasktool env`: what the tool can do and what it runs on."""

from __future__ import annotations

from typing import Annotated

import typer

from tasktool.cli.common import FormatOpt


def tasks(fmt: FormatOpt = "auto"):
    """List every task with its aliases, default model, input kind and supported commands.

    Examples: `tasktool tasks`, `tasktool tasks --format jsonl | jq .name`
    """
    from tasktool.cli.common import output_format, print_rows
    from tasktool.tasks.registry import TASKS

    fmt = output_format(fmt, pipe="jsonl")
    rows = [
        {
            "name": s.name,
            "aliases": list(s.aliases),
            "default_model": s.default_model,
            "input": s.input_kind,
            "supports": s.supports,
            "metric": s.metric,
            "summary": s.summary,
        }
        for s in TASKS.values()
    ]
    if fmt != "table":
        print_rows(rows, fmt)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tasktool tasks")
    for col in ("task", "aliases", "default model", "input", "supports"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            ", ".join(row["aliases"]),
            row["default_model"],
            row["input"],
            ", ".join(row["supports"]),
        )
    Console().print(table)


def env(
    fmt: FormatOpt = "auto", device: Annotated[bool, typer.Option(help="Probe the compute device.")] = True
):
    """Show versions, the compute device, whether the Hub is offline, and the cache folder."""
    import importlib.metadata as md
    import os
    import platform

    from tasktool import __version__
    from tasktool.cli.common import output_format, print_json
    from tasktool.runtime import offline, offline_base_model

    fmt = output_format(fmt, ("auto", "table", "json", "jsonl"))

    info: dict = {
        "tasktool": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for pkg in (
        "torch",
        "transformers",
        "datasets",
        "accelerate",
        "tokenizers",
        "soundfile",
        "soxr",
        "pillow",
    ):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    if device:
        import torch

        info["device"] = (
            "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
        )
        info["cuda_devices"] = torch.cuda.device_count()
        info["cpu_threads"] = torch.get_num_threads()
        from tasktool.runtime import cpu_has_native

        # whether --dtype bfloat16/float16 can speed up CPU inference here (else it slows it down)
        info["cpu_bf16_units"] = cpu_has_native("bf16")
        info["cpu_fp16_units"] = cpu_has_native("fp16")
    info["hub_offline"] = offline()
    from tasktool import hub

    info["hub_endpoint"] = hub.endpoint()
    why = None if offline() else hub.probe()  # one quick connection attempt (HF_ENDPOINT, proxies)
    info["hub_reachable"] = None if offline() else why is None
    if why:
        info["hub_unreachable_because"] = why
    info["hf_home"] = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
    info["hf_token_set"] = bool(os.environ.get("HF_TOKEN"))  # never the token itself
    info["offline_base_model"] = offline_base_model()
    if fmt != "table":
        print_json(info, fmt)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tasktool env", show_header=False)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        table.add_row(key, str(value))
    Console().print(table)
