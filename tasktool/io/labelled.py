"""Labelled examples for finetune and evaluate: a task's Reader names the columns it needs (roles)
and turns each row into one checked example, or a one-line error naming the file and row."""

from __future__ import annotations

from tasktool.io.columns import pick
from tasktool.io.readers import Source, load_rows


class Reader:
    """The data hooks of a task: `roles` and `example`; `read` does the rest for any source."""

    # role -> (flag, default column names, required)
    roles: dict[str, tuple[str, tuple[str, ...], bool]] = {}
    conll = False  # accept CoNLL token files

    def __init__(self, spec=None, recipe: dict | None = None, columns: dict[str, str | None] | None = None):
        self.spec = spec  # the task's registry entry
        self.recipe = recipe or {}
        self.columns = {k: v for k, v in (columns or {}).items() if v}

    def example(self, row: dict, cols: dict[str, str | None], where: str) -> dict:
        """Task hook: one raw row -> a checked, normalised example (raise naming `where`)."""
        raise NotImplementedError

    def eval_row(self, example: dict) -> dict:
        """Task hook: how an example is written to eval.jsonl (readable back by `tasktool evaluate`)."""
        return {k: v for k, v in example.items() if not k.startswith("_")}

    def read(self, source: Source) -> list[dict]:
        rows = load_rows(source, conll=self.conll)
        cols = self.resolve_columns(rows[0])
        examples = []
        for n, row in enumerate(rows):
            where = f"{source.name}, row {n + 1}"
            examples.append({**self.example(row, cols, where), "_where": where})
        return examples

    def resolve_columns(self, first: dict) -> dict[str, str | None]:
        return {
            role: pick(first, self.columns.get(role), defaults, role, flag, required)
            for role, (flag, defaults, required) in self.roles.items()
        }
