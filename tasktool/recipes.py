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


def recipe_path(task: str) -> Path:
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    path = recipes_dir() / f"{spec.name}.yaml"
    if not path.exists():
        raise TaskToolError(f"no recipe for task '{spec.name}'", "see `tasktool recipes list`")
    return path


def recipe_fields(task: str) -> dict:
    """Every key a task's recipe may hold: the shared FIELDS plus the task's own RECIPE_KEYS."""
    from tasktool.tasks.registry import resolve

    return {**FIELDS, **resolve(task).recipe_keys()}


def resolve_recipe(
    task: str,
    recipe_file: str | Path | None = None,
    flags: dict | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Task defaults < --recipe FILE < explicit flags < key=value overrides."""
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    fields = recipe_fields(spec.name)
    recipe = read_yaml(recipe_path(spec.name), fields)
    if recipe_file:
        user = read_yaml(recipe_file, fields)
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
