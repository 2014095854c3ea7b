"""The README a newcomer follows: set-up first, an example per task (text generation included), one
small example per data format, outputs and exit codes, then scaling; its commands name real tasks and
options, and the CPU internals live in benchmarks/README.md."""

from __future__ import annotations

import re
from pathlib import Path

from tasktool.tasks.registry import TASKS, resolve

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _sections() -> list[str]:
    return re.findall(r"^## (.+)$", README, flags=re.M)


def test_sections_come_in_a_newcomers_order():
    order = ["Set up", "Use", "Tasks", "Data formats", "Outputs and exit codes", "Python API", "Scaling"]
    found = _sections()
    assert [s for s in found if s in order] == order, found
    assert "Checking commands in CI: smoke mode" in found
    assert "### How the code is laid out" in README and "### Adding a task" in README


def test_set_up_is_two_commands():
    setup = README.split("## Set up", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", setup, flags=re.S).group(1)
    assert [ln.split("#")[0].strip() for ln in block.strip().splitlines()] == [
        "make install",
        "source .venv/bin/activate",
    ]


def test_every_task_has_an_example_and_every_example_names_a_real_task():
    used = set()
    for _command, task in re.findall(r"tasktool (infer|finetune|evaluate) ([a-z][\w-]*)", README):
        used.add(resolve(task).name)  # raises on a task name that does not exist
    assert used == set(TASKS), set(TASKS) - used


def test_data_formats_has_one_example_per_format():
    formats = README.split("## Data formats", 1)[1].split("\n## ", 1)[0]
    for name in (
        "CoNLL",
        "SQuAD JSON",
        "Manifests",
        "Class folders",
        "CSV",
        "JSONL",
        "--delimiter",
        "--dataset-config",
    ):
        assert name in formats, name
    assert formats.count("```") >= 12  # a small example in each


def test_the_formats_it_lists_are_the_ones_the_command_takes():
    from tasktool.cli.common import FORMATS

    listed = re.search(r"`--format ([a-z|]+)`", README).group(1).split("|")
    assert set(listed) == set(FORMATS) - {"auto"}


def test_cpu_internals_live_in_the_benchmarks_readme():
    bench = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    for detail in ("packed_encoder", "concurrent_micro_batches", "fast_dropout", "AVX2"):
        assert detail in bench, detail
    assert "(benchmarks/README.md)" in README.split("## Scaling", 1)[1]
    assert (
        len(README.split("## Scaling", 1)[1].split("\n## ", 1)[0]) < len(README) / 3
    )  # no longer half of it
