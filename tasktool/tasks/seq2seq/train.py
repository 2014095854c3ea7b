"""Fine-tuning encoder-decoder models for summarization and translation.

Training uses Seq2SeqTrainer. The input prefix and language settings are worked out with the SAME
functions the inference predictors use (predict.py), and whatever is not the model's
default (a custom prefix, the trained language pair, the generation length and beams) is written
into the saved config, so `tasktool infer` on the folder, with no extra flags, feeds the model what
it was trained on and generates as `evaluate` did.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.tasks.seq2seq.data import is_translation, languages
from tasktool.tasks.seq2seq.evaluate import score
from tasktool.training.trainer import TaskTrainer


class Trainer(TaskTrainer):
    """summarization (document -> summary) and translation (source -> target)."""

    loss_units = "tokens"

    def __init__(self, spec, recipe, columns=None, quiet=False):
        super().__init__(spec, recipe, columns, quiet)
        self.model = None
        self.prefix: str | None = None

    @property
    def translation(self) -> bool:
        return is_translation(self.spec)

    @property
    def trainer_metric_names(self) -> tuple[str, ...]:
        """With predict_with_generate the Trainer's evaluations score the generations: metric_for_best may
        name these (the default stays eval loss, which needs no generation)."""
        if not self.recipe.get("predict_with_generate"):
            return ()
        return ("bleu", "chrf") if self.translation else ("rouge1", "rouge2", "rougeL", "rougeLsum")

    def languages(self) -> tuple[str, str]:
        return languages(self.recipe)

    # ------------------------------------------------------------------ model
    def load_model(self, ref):
        self.model = super().load_model(ref)
        return self.model

    def setup(self, tokenizer) -> str:
        """The source prefix, as the inference predictor will compute it; saves what it needs into the model."""
        if self.prefix is not None:
            return self.prefix
        from tasktool.tasks.seq2seq import predict as S

        model, r = self.model, self.recipe
        config, gen = model.config, model.generation_config
        custom = r.get("source_prefix")
        params_key = "summarization"
        if not self.translation:
            prefix, _ = S.summarization_prefix(config)
            if custom is not None and custom != prefix:
                prefix = custom
                _set_task_params(config, "summarization", {"prefix": custom})
        else:
            src, tgt = self.languages()
            codes = S.language_codes(tokenizer)
            is_t5 = getattr(config, "model_type", "") in S.T5_MODEL_TYPES
            if custom is not None and (codes or is_t5 or config.model_type == "marian"):
                raise TaskToolError(
                    "source_prefix is not used for translation with this model",
                    "its input is set by source_lang/target_lang; drop source_prefix",
                )
            params_key = None
            if codes:  # mBART / NLLB / M2M100: language code tokens; the target forced at generation
                for key, value in S.language_kwargs(tokenizer, codes, gen, src, tgt).items():
                    setattr(gen, key, value)
                tokenizer.tgt_lang = S.pick_code(tgt, codes, "target_lang")
                prefix = ""
            elif config.model_type == "marian":
                token = S.marian_target_token(tokenizer, tgt)
                prefix = token + " " if token else ""
            elif custom is not None:
                prefix = config.prefix = custom
            else:
                prefix, _ = S.translation_prefix(config, src, tgt)
                s_code = S._code_of(S.language_name(src, "source_lang"))
                t_code = S._code_of(S.language_name(tgt, "target_lang"))
                if is_t5 and s_code and t_code:
                    # keep only the trained pair: inference with no language flags then uses it
                    params = dict(getattr(config, "task_specific_params", None) or {})
                    params_key = f"translation_{s_code}_to_{t_code}"
                    kept = {k: v for k, v in params.items() if not k.startswith("translation_")}
                    kept[params_key] = {**(params.get(params_key) or {}), "prefix": prefix}
                    config.task_specific_params = kept
        self._generation_settings(config, gen, params_key)
        self.prefix = prefix
        return prefix

    def _generation_settings(self, config, gen, params_key: str | None) -> None:
        """Evaluation generates with the recipe's length and beams; saved so `infer` does the same."""
        new_tokens, beams = self.recipe.get("generation_max_new_tokens"), self.recipe.get("num_beams")
        if new_tokens:
            gen.max_new_tokens = int(new_tokens)
        if beams:
            gen.num_beams = int(beams)
            params = (getattr(config, "task_specific_params", None) or {}).get(params_key or "") or {}
            if "num_beams" in params:  # T5 declares beams per task, and the predictor passes them explicitly
                _set_task_params(config, params_key, {"num_beams": int(beams)})
        if (gen.num_beams or 1) == 1:  # beam-only settings would make the saved generation config invalid
            if gen.early_stopping not in (None, False):
                gen.early_stopping = False
            if gen.length_penalty not in (None, 1.0):
                gen.length_penalty = 1.0
        try:
            gen.validate(strict=True)
        except ValueError as exc:
            first = str(exc).strip().splitlines()[0]
            raise TaskToolError(
                f"invalid generation settings: {first}", "check num_beams and generation_max_new_tokens"
            ) from exc

    # ------------------------------------------------------------------ training
    def features(self, examples, tokenizer, train):
        prefix = self.setup(tokenizer)
        max_length = self.recipe.get("max_length") or None
        max_target = self.recipe.get("max_target_length") or max_length
        feats = []
        for ex in examples:
            enc = tokenizer(prefix + ex["source"], truncation=True, max_length=max_length)
            labels = tokenizer(text_target=ex["target"], truncation=True, max_length=max_target)["input_ids"]
            feats.append(
                {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
            )
        return feats

    def collator(self, tokenizer):
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, model=self.model, label_pad_token_id=-100)

    def training_arguments(self, ckpt_dir, log_dir, has_eval, **extra):
        """The core's arguments, as Seq2SeqTrainingArguments (generation during evaluation when asked)."""
        from transformers import Seq2SeqTrainingArguments

        base = super().training_arguments(ckpt_dir, log_dir, has_eval, **extra)
        args = Seq2SeqTrainingArguments.__new__(Seq2SeqTrainingArguments)
        args.__dict__.update(base.__dict__)
        args.sortish_sampler = False
        args.predict_with_generate = bool(self.recipe.get("predict_with_generate"))
        args.generation_max_length = None  # the model's generation config (max_new_tokens) decides
        args.generation_num_beams = None
        args.generation_config = None
        return args

    def trainer_class(self):
        from transformers import Seq2SeqTrainer

        outer = self

        class _Trainer(Seq2SeqTrainer):
            def __init__(self, *args, **kwargs):
                if outer.recipe.get("predict_with_generate") and kwargs.get("compute_metrics") is None:
                    kwargs["compute_metrics"] = outer.compute_metrics(kwargs.get("processing_class"))
                super().__init__(*args, **kwargs)

        return _Trainer

    def compute_metrics(self, tokenizer):
        """ROUGE or BLEU/chrF on the texts generated during evaluation (predict_with_generate)."""
        import numpy as np

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

        def compute(eval_pred):
            preds, labels = eval_pred.predictions, eval_pred.label_ids
            if isinstance(preds, tuple):
                preds = preds[0]
            preds = np.where(preds < 0, pad, preds)
            labels = np.where(labels < 0, pad, labels)
            texts = [t.strip() for t in tokenizer.batch_decode(preds, skip_special_tokens=True)]
            refs = [t.strip() for t in tokenizer.batch_decode(labels, skip_special_tokens=True)]
            return self.score(texts, refs)

        return compute

    def score(self, predictions: list[str], references: list[str]) -> dict:
        return score(self.spec, predictions, references)


def _set_task_params(config, key: str, values: dict) -> None:
    params = dict(getattr(config, "task_specific_params", None) or {})
    params[key] = {**(params.get(key) or {}), **values}
    config.task_specific_params = params
