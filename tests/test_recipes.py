"""Recipes: one YAML per task, --recipe files and key=value overrides, checked before any model loads."""

from __future__ import annotations

import pytest
import yaml
from conftest import assert_user_error

TEXT_TASKS = [
    "text-classification",
    "token-classification",
    "question-answering",
    "summarization",
    "translation",
    "text-generation",
    "fill-mask",
]


def test_recipes_list_names_every_text_task(cli):
    result = cli("recipes", "list")
    assert result.code == 0, result.err
    for task in TEXT_TASKS:
        assert task in result.out


def test_recipes_show_resolves_an_alias_and_prints_valid_yaml(cli):
    result = cli("recipes", "show", "ner")
    assert result.code == 0, result.err
    data = yaml.safe_load(result.out)
    assert data["task"] == "token-classification"
    assert data["metric"] == "f1" and data["lr"] > 0 and data["max_length"] > 0


@pytest.mark.parametrize("task", TEXT_TASKS)
def test_every_shipped_recipe_passes_the_type_checks(task):
    from tasktool.recipes import recipe_path
    from tasktool.training.recipe import FIELDS, read_yaml

    recipe = read_yaml(recipe_path(task))
    assert recipe["task"] == task and recipe["model"]
    assert set(recipe) <= set(FIELDS)


def test_precedence_is_defaults_then_file_then_flags_then_overrides(tmp_path):
    from tasktool.recipes import resolve_recipe

    user = tmp_path / "mine.yaml"
    user.write_text("lr: 1.0e-3\nbatch_size: 4\nepochs: 7\n")
    recipe = resolve_recipe(
        "sentiment", user, {"batch_size": 8, "seed": None}, ["epochs=2", "group_by_length=no"]
    )
    assert recipe["lr"] == 1e-3  # from the file
    assert recipe["batch_size"] == 8  # the flag beats the file
    assert recipe["epochs"] == 2.0  # the override beats both
    assert recipe["group_by_length"] is False
    assert recipe["seed"] == 42  # untouched default
    assert recipe["task"] == "text-classification"


def test_unknown_override_key_names_the_nearest_key(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na,0\nb,1\n")
    result = cli("finetune", "sentiment", "--data", data, "learning_rat=3e-5")
    assert_user_error(result, "unknown recipe key 'learning_rat'", "did you mean 'lr'")
    result = cli("finetune", "sentiment", "--data", data, "max_lenght=64")
    assert_user_error(result, "unknown recipe key 'max_lenght'", "max_length")


def test_wrongly_typed_override_is_a_one_line_error(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na,0\nb,1\n")
    assert_user_error(
        cli("finetune", "sentiment", "--data", data, "batch_size=many"), "batch_size", "integer"
    )
    assert_user_error(cli("finetune", "sentiment", "--data", data, "lr"), "key=value")


def test_unknown_key_in_a_recipe_file_is_named_with_the_file(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na,0\nb,1\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochz: 3\n")
    assert_user_error(
        cli("finetune", "sentiment", "--data", data, "--recipe", recipe), "epochz", "r.yaml", "epochs"
    )


def test_recipe_for_another_task_is_refused(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na,0\nb,1\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: qa\n")
    assert_user_error(cli("finetune", "sentiment", "--data", data, "--recipe", recipe), "question-answering")


def test_dump_round_trips_through_read_yaml(tmp_path):
    from tasktool.recipes import resolve_recipe
    from tasktool.training.recipe import dump, read_yaml

    recipe = resolve_recipe("qa", overrides=["stride=64"])
    path = tmp_path / "recipe.yaml"
    path.write_text(dump(recipe))
    assert read_yaml(path) == {k: v for k, v in recipe.items() if v is not None}
