"""`tasktool finetune`: train a model for a task from a recipe, data files and overrides."""

from __future__ import annotations

from typing import Annotated

import typer

from tasktool.cli.common import (
    AnswersCol,
    ContextCol,
    LabelCol,
    ModelOpt,
    PathCol,
    QuestionCol,
    QuietOpt,
    SourceCol,
    TagsCol,
    TargetCol,
    TaskArg,
    TextCol,
    TextPairCol,
    TokensCol,
    TranscriptionCol,
    column_map,
    flag_overrides,
    option,
)

HELP = """Fine-tune a model for a task; the folder it writes works with `tasktool infer` and `evaluate`.

Settings come from the task's recipe (`tasktool recipes show TASK`), then --recipe FILE, then the
flags, then key=value overrides (e.g. `lr=3e-5 max_length=128`). Any recipe key is a flag too, including
a task's own keys (`tasktool recipes show TASK --keys`): `--ignore-index 0` is `ignore_index=0`.

Examples:

  tasktool finetune sentiment --data train.csv --output-dir sentiment-model

  tasktool finetune ner --data train.conll --eval-data dev.conll --epochs 5

  tasktool finetune qa --data squad_sample.json --max-steps 200 max_length=256

  tasktool finetune classify --dataset glue --dataset-config mrpc --eval-split validation

  tasktool finetune generate --recipe chat-lora --data chats.jsonl -o chat-adapter lora_r=32

  tasktool finetune detect --data boxes.csv --max-steps 300 --output-dir detector

  tasktool finetune ner --data train.jsonl --smoke   # checks the command in seconds (CI)

On a pipe (or with --format json) the run's summary is printed as JSON.
"""

G_DATA, G_TRAIN = "Data", "Training"

OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="Recipe overrides: key=value ...", show_default=False)
]
DataOpt = option(
    str | None,
    "Training data: .csv/.tsv/.json/.jsonl/.parquet/.txt, CoNLL file, or dataset folder.",
    G_DATA,
    "--data",
    "-d",
)
EvalDataOpt = option(str | None, "Evaluation data (default: a fixed-seed held-out share of --data).", G_DATA)
DatasetOpt = option(str | None, "A Hub dataset name or save_to_disk folder (instead of --data).", G_DATA)
TrainSplitOpt = option(str, "--dataset split to train on.", G_DATA)
EvalSplitOpt = option(str | None, "--dataset split to evaluate on (default: held out).", G_DATA)
DatasetConfigOpt = option(
    str | None, "--dataset configuration (e.g. --dataset glue --dataset-config mrpc).", G_DATA
)
DelimiterOpt = option(str | None, "CSV field separator: one character, or tab/pipe/semicolon.", G_DATA)
FormatOpt = option(
    str, "auto (a table on a terminal, JSON on a pipe), table, json, jsonl.", G_TRAIN, "--format"
)
KeepOpt = option(
    bool, "--smoke: keep the temporary folder (its path is printed) instead of removing it.", G_TRAIN
)
RecipeOpt = option(str | None, "A YAML recipe over the task's defaults.", G_TRAIN)
OutputDirOpt = option(
    str | None,
    "Folder for the model, metrics and logs (default: TASK-finetuned).",
    G_TRAIN,
    "--output-dir",
    "-o",
)
EpochsOpt = option(float | None, "Passes over the data.", G_TRAIN)
MaxStepsOpt = option(int | None, "Stop after N optimizer steps (overrides --epochs).", G_TRAIN)
LrOpt = option(float | None, "Peak learning rate.", G_TRAIN)
TrainBatchOpt = option(int | None, "Training batch size.", G_TRAIN, "--batch-size", "-b")
SeedOpt = option(int | None, "Random seed (also picks the held-out split).", G_TRAIN)
EvalStepsOpt = option(int | None, "Evaluate every N steps (default: every epoch).", G_TRAIN)
SaveLimitOpt = option(int | None, "Checkpoints kept while training.", G_TRAIN)
ResumeOpt = option(bool, "Continue from the last checkpoint in --output-dir.", G_TRAIN)
SmokeOpt = option(
    bool,
    "Check this exact command in seconds: same data, columns and recipe, a shrunk random model, "
    "a few examples and steps; output to a temporary folder (removed; --keep keeps it) unless --output-dir.",
    G_TRAIN,
    "--smoke",
)
AudioSecondsOpt = option(
    float | None, "Audio: longer training clips are cut (classification) or left out (ASR).", G_DATA
)
StrictOpt = option(
    bool, "Audio/images: stop at an unreadable file instead of skipping it.", G_DATA, "--strict"
)
OutsideOpt = option(
    bool,
    "Audio/images: manifest paths may be absolute or leave the manifest's folder.",
    G_DATA,
    "--allow-absolute-paths",
)
ChatTemplateOpt = option(
    str | None,
    "Chat data: a Jinja chat template FILE for a tokenizer without one (saved with the model).",
    G_DATA,
    "--chat-template",
)
FourBitOpt = option(
    bool,
    "QLoRA: load the base model in 4-bit (bitsandbytes, CUDA GPU; with lora=true).",
    G_TRAIN,
    "--load-in-4bit",
)
ReportToOpt = option(
    str | None, "Experiment tracker: none (default), tensorboard, mlflow or wandb.", G_TRAIN, "--report-to"
)
PushOpt = option(
    str | None,
    "After a successful run, upload model, card and metrics to this Hub repo (HF_TOKEN); checked "
    "before training starts.",
    G_TRAIN,
    "--push-to-hub",
)
HubPrivateOpt = option(bool, "--push-to-hub: create the repo private.", G_TRAIN, "--hub-private")
LabelsOpt = option(
    str | None,
    "Classification/NER: a file declaring the whole label set, one a line.",
    G_DATA,
    "--labels",
)


def finetune(
    task: TaskArg,
    overrides: OverridesArg = None,
    data: DataOpt = None,
    eval_data: EvalDataOpt = None,
    dataset: DatasetOpt = None,
    train_split: TrainSplitOpt = "train",
    eval_split: EvalSplitOpt = None,
    dataset_config: DatasetConfigOpt = None,
    delimiter: DelimiterOpt = None,
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    output_dir: OutputDirOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    lr: LrOpt = None,
    batch_size: TrainBatchOpt = None,
    seed: SeedOpt = None,
    eval_steps: EvalStepsOpt = None,
    save_total_limit: SaveLimitOpt = None,
    resume: ResumeOpt = False,
    quiet: QuietOpt = False,
    smoke: SmokeOpt = False,
    keep: KeepOpt = False,
    fmt: FormatOpt = "auto",
    text_column: TextCol = None,
    text_pair_column: TextPairCol = None,
    label_column: LabelCol = None,
    tokens_column: TokensCol = None,
    tags_column: TagsCol = None,
    question_column: QuestionCol = None,
    context_column: ContextCol = None,
    answers_column: AnswersCol = None,
    source_column: SourceCol = None,
    target_column: TargetCol = None,
    path_column: PathCol = None,
    transcription_column: TranscriptionCol = None,
    max_audio_seconds: AudioSecondsOpt = None,
    strict: StrictOpt = False,
    allow_absolute_paths: OutsideOpt = False,
    chat_template: ChatTemplateOpt = None,
    load_in_4bit: FourBitOpt = False,
    report_to: ReportToOpt = None,
    push_to_hub: PushOpt = None,
    hub_private: HubPrivateOpt = False,
    labels: LabelsOpt = None,
):
    from tasktool import api
    from tasktool.cli.common import is_quiet, output_format
    from tasktool.cli.evaluate import METRIC_FORMATS
    from tasktool.recipes import read_labels_file
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    fmt = output_format(fmt, METRIC_FORMATS)  # checked before any model loads
    quiet = is_quiet(quiet)
    summary = api.finetune(
        spec.name,
        data,
        eval_data=eval_data,
        dataset=dataset,
        train_split=train_split,
        eval_split=eval_split,
        dataset_config=dataset_config,
        delimiter=delimiter,
        model=model,
        recipe=recipe,
        output_dir=output_dir,
        resume=resume,
        smoke=smoke,
        keep=keep,
        quiet=quiet,
        columns=column_map(locals()),
        overrides=flag_overrides(list(overrides or [])),
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        eval_steps=eval_steps,
        save_total_limit=save_total_limit,
        max_audio_seconds=max_audio_seconds,
        strict=True if strict else None,
        allow_absolute_paths=True if allow_absolute_paths else None,
        chat_template=chat_template,
        load_in_4bit=True if load_in_4bit else None,
        report_to=report_to,
        push_to_hub=push_to_hub,
        hub_private=True if hub_private else None,
        labels=read_labels_file(labels) if labels else None,
    )
    out = summary["output_dir"]
    from tasktool.cli.evaluate import show_metrics

    if fmt == "table":
        show_metrics(summary["eval"], f"{spec.name}: {out} (evaluated on {summary['eval_data']})")
    else:  # a pipe or --format json: the whole summary (what metrics.json holds), one JSON object
        from tasktool.cli.common import print_json

        print_json(summary, fmt)
    if quiet:
        return
    from tasktool.console import info

    if smoke:  # a random model: nothing to use, only the news that the command works
        kept = f"; its files are in {out}/" if output_dir or keep else ""
        info(f"smoke run passed: the data, columns and recipe work with a shrunk random model{kept}")
        return
    info(f"saved to {out}/ (metrics.json, train_log.jsonl, loss_curve.png, README.md, recipe.yaml)")
    info(f'try: tasktool infer {spec.name} --model {out} "..."')
    if summary.get("hub_url"):
        info(f"uploaded to {summary['hub_url']}")


def register(app: typer.Typer) -> None:
    app.command(
        "finetune", help=HELP, no_args_is_help=True, context_settings={"ignore_unknown_options": True}
    )(finetune)
