"""A task's recipe: its YAML of defaults under recipes/, a user's YAML over it, then flags and
key=value overrides (tasktool.training.recipe checks every key and value)."""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.training.recipe import coerce, parse_overrides, read_yaml


def recipes_dir() -> Path:
    """The top-level `recipes/` folder (editable install), or the copy packaged inside tasktool."""
    pkg = Path(__file__).resolve().parent
    for candidate in (pkg.parent / "recipes", pkg / "recipes"):
        if candidate.is_dir():
            return candidate
    raise TaskToolError("the recipes folder is missing", "reinstall tasktool (pip install -e .)")


def available() -> list[Path]:
    return sorted(recipes_dir().glob("*.yaml"))


def recipe_path(task: str) -> Path:
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    path = recipes_dir() / f"{spec.name}.yaml"
    if not path.exists():
        raise TaskToolError(f"no recipe for task '{spec.name}'", "see `tasktool recipes list`")
    return path


def resolve_recipe(
    task: str,
    recipe_file: str | Path | None = None,
    flags: dict | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Task defaults < --recipe FILE < explicit flags < key=value overrides."""
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    recipe = read_yaml(recipe_path(spec.name))
    if recipe_file:
        user = read_yaml(recipe_file)
        if user.get("task") and resolve(user["task"]).name != spec.name:
            other = resolve(user["task"]).name
            raise TaskToolError(
                f"recipe '{recipe_file}' is for task '{other}', not '{spec.name}'",
                f"use a {spec.name} recipe",
            )
        recipe.update(user)
    for key, value in (flags or {}).items():
        if value is not None:
            recipe[key] = coerce(key, value)
    recipe.update(parse_overrides(overrides or []))
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
