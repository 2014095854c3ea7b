"""The `tasktool` application: command registration and the one place errors are rendered."""

from __future__ import annotations

import os
import sys

import typer

from tasktool import __version__

app = typer.Typer(
    name="tasktool",
    help="Run any Hugging Face Transformers task from the shell: infer, finetune, evaluate.\n\n"
    "Examples:\n\n"
    "  tasktool tasks\n\n"
    "  tasktool infer sentiment 'I loved it' 'I did not'\n\n"
    "  tasktool infer ner --file news.txt --output entities.jsonl\n\n"
    "  tasktool finetune sentiment --data train.csv --output-dir out/\n\n"
    "  tasktool evaluate sentiment --model out/ --data dev.csv",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"tasktool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Show full tracebacks on errors (or TASKTOOL_DEBUG=1). Before or after the command.",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Nothing on stderr but errors. Before or after the command."
    ),
    fmt: str = typer.Option(
        None,
        "--format",
        help="auto (a table on a terminal, JSON on a pipe), table, jsonl, json, csv. "
        "Before or after the command.",
        show_default=False,
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
):
    """Run any Hugging Face Transformers task from the shell."""
    from tasktool.cli.common import FORMATS, GLOBAL, check_choice
    from tasktool.console import set_quiet

    if fmt is not None:
        check_choice("--format", fmt, FORMATS)  # refused here, before any command loads a model
    GLOBAL.update(debug=debug, quiet=quiet, format=fmt)
    set_quiet(quiet)


def _register():
    from tasktool.cli import evaluate, export, finetune, infer, info, merge, recipes, serve, smoke

    app.command("tasks", help="List the tasks, their aliases and default models.")(info.tasks)
    app.command("env", help="Versions, device, offline state and cache folder.")(info.env)
    app.command("infer", help=infer.HELP, no_args_is_help=True)(infer.infer)
    for module in (finetune, evaluate, recipes, smoke, serve, export):
        module.register(app)
    merge.register(app)


_register()


def _debug() -> bool:
    from tasktool.cli.common import GLOBAL

    return os.environ.get("TASKTOOL_DEBUG", "0") not in ("", "0", "false") or GLOBAL["debug"]


GLOBAL_FLAGS = ("--debug", "--quiet", "-q")


def hoist_global_flags(argv: list[str]) -> list[str]:
    """--debug, --quiet/-q and --format X work anywhere on the line: they are moved in front of the
    command, where the root callback reads them (a `--` ends the options, as usual)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg in GLOBAL_FLAGS:
            front.append("--quiet" if arg == "-q" else arg)
        elif arg == "--format" and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        elif arg.startswith("--format="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def render_error(message: str) -> None:
    from tasktool.console import err_console

    err_console().print(f"[bold red]error:[/bold red] {message}", markup=True, highlight=False)


_exit_prepared = False


def _skip_final_collection() -> None:
    """Freeze the heap when the process ends, after every other exit handler (atexit runs them last
    registered first), so the interpreter's final garbage collection does not walk the objects torch
    and transformers made, a cost every command that imported them paid after its outputs were written
    and closed (README, "Generation through ONNX Runtime"). Objects are still released by their
    reference counts; only cycles are left to the process's end."""
    global _exit_prepared
    if not _exit_prepared:
        import atexit
        import gc

        atexit.register(gc.freeze)
        _exit_prepared = True


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn every failure into one line and an exit code."""
    _skip_final_collection()
    try:  # typer >= 0.29 vendors its own click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer
        import click.exceptions as click

    from tasktool.errors import FAILURE, INTERRUPTED, USAGE, TaskToolError

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):  # accelerate launch / torchrun: CPU-only DDP setup
        from tasktool.distributed import prepare_env

        prepare_env()

    from tasktool.cli.common import GLOBAL
    from tasktool.console import set_quiet

    argv = list(sys.argv[1:] if argv is None else argv)
    GLOBAL.update(debug="--debug" in argv, quiet=False, format=None)  # one run's flags, nothing left over
    set_quiet(False)
    argv = hoist_global_flags(argv)
    try:
        code = app(args=argv, standalone_mode=False, prog_name="tasktool")
        sys.exit(code if isinstance(code, int) else 0)
    except TaskToolError as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        render_error(exc.one_line().replace("[", "\\["))
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        render_error("interrupted")
        sys.exit(INTERRUPTED)
    except click.ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # the help; a command given nothing to work on is still a usage error
            ctx = getattr(exc, "ctx", None)
            sys.exit(USAGE if ctx is not None and ctx.parent is not None else 0)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        render_error((exc.format_message() + where).replace("[", "\\["))
        sys.exit(USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except KeyboardInterrupt:
        render_error("interrupted")
        sys.exit(INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if _debug():
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        render_error(
            f"{type(exc).__name__}: {text} (rerun as `tasktool --debug ...` or with TASKTOOL_DEBUG=1 "
            "for the traceback)".replace("[", "\\[")
        )
        sys.exit(FAILURE)
    finally:  # the flags were this run's: a later call in the same process (the Python API) starts clean
        GLOBAL.update(debug=False, quiet=False, format=None)
        set_quiet(False)
