"""A task's recipe: its YAML of defaults under recipes/, a user's YAML over it, then flags and
key=value overrides (tasktool.training.recipe checks every key and value)."""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.training.recipe import FIELDS, coerce, parse_overrides, read_yaml


def recipes_dir() -> Path:
    """The top-level `recipes/` folder (editable install), or the copy packaged inside tasktool."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg.parent / "recipes", pkg / "recipes"):
        if candidate.is_dir():
            return candidate
    raise TaskToolError("the recipes folder is missing", "reinstall tasktool (pip install -e .)")


def available() -> list[Path]:
    return sorted(recipes_dir().glob("*.yaml"))


def named_recipe(name: str) -> Path | None:
    """A shipped recipe by name (e.g. chat-lora: recipes/chat-lora.yaml), or None."""
    if not name or "/" in name or "\\" in name or name.endswith((".yaml", ".yml")):
        return None
    path = recipes_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def recipe_path(task: str) -> Path:
    """The recipe of a task (name or alias), or a shipped recipe by its name (chat-lora)."""
    from tasktool.tasks.registry import resolve

    try:
        spec = resolve(task)
    except TaskToolError:
        named = named_recipe(task)
        if named is None:
            raise
        return named
    path = recipes_dir() / f"{spec.name}.yaml"
    if not path.exists():
        raise TaskToolError(f"no recipe for task '{spec.name}'", "see `tasktool recipes list`")
    return path


def recipe_fields(task: str) -> dict:
    """Every key a task's recipe may hold: the shared FIELDS plus the task's own RECIPE_KEYS."""
    from tasktool.tasks.registry import resolve

    return {**FIELDS, **resolve(task).recipe_keys()}


def file_fields(path: Path) -> dict:
    """The keys a recipe file may hold, by the task it names (`task:`), else by its file name."""
    import yaml

    try:
        task = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("task") or path.stem
    except (OSError, yaml.YAMLError, AttributeError):
        task = path.stem
    return recipe_fields(str(task))


def resolve_recipe(
    task: str,
    recipe_file: str | Path | None = None,
    flags: dict | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Task defaults < --recipe FILE < explicit flags < key=value overrides. A task that does not
    fine-tune (evaluation only) needs no recipe file: it starts from no defaults."""
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    fields = recipe_fields(spec.name)
    shipped = recipes_dir() / f"{spec.name}.yaml"
    recipe = read_yaml(recipe_path(spec.name), fields) if shipped.exists() or "finetune" in spec.modes else {}
    if recipe_file:
        # a file, or the name of a shipped recipe (--recipe chat-lora)
        given = Path(recipe_file).expanduser()
        user = read_yaml(given if given.is_file() else named_recipe(str(recipe_file)) or given, fields)
        if user.get("task") and resolve(user["task"]).name != spec.name:
            other = resolve(user["task"]).name
            raise TaskToolError(
                f"recipe '{recipe_file}' is for task '{other}', not '{spec.name}'",
                f"use a {spec.name} recipe",
            )
        recipe.update(user)
    for key, value in (flags or {}).items():
        if value is not None:
            recipe[key] = coerce(key, value, fields=fields)
    recipe.update(parse_overrides(overrides or [], fields))
    recipe["task"] = spec.name
    return recipe


def read_labels_file(path: str | Path) -> list[str]:
    """--labels FILE: one label a line (blank lines and `#` comments skipped), or a JSON/YAML list."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise TaskToolError(f"--labels file '{path}' not found", "give a file with one label a line")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TaskToolError(f"--labels file '{path}' is not a valid list", "one label a line") from exc
        labels = [str(x).strip() for x in loaded or []]
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(set(labels)) != len(labels):
        dup = next(x for x in labels if labels.count(x) > 1)
        raise TaskToolError(f"--labels file '{path}' lists '{dup}' twice", "list each label once")
    if not labels:
        raise TaskToolError(f"--labels file '{path}' lists no labels", "one label a line")
    return labels
