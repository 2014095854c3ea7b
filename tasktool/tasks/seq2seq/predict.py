"""summarization and translation: encoder-decoder models (BART, T5, Marian, mBART, NLLB, M2M100) + generate.

transformers 5 has no pipelines for these tasks, so what the old pipelines did is done here:
the T5 task prefix ("summarize: ", "translate English to French: ") and the generation settings of
`config.task_specific_params`, and the language codes multilingual tokenizers need (source code on
the tokenizer, target code forced as the first generated token).
"""

from __future__ import annotations

import re

from tasktool.errors import TaskToolError
from tasktool.tasks.text import TextPredictor

# T5 prefixes name languages in English; these are the codes people type for them.
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "ro": "Romanian",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
    "cs": "Czech",
    "pl": "Polish",
    "sv": "Swedish",
    "da": "Danish",
    "fi": "Finnish",
    "tr": "Turkish",
    "el": "Greek",
    "hi": "Hindi",
    "uk": "Ukrainian",
}
T5_MODEL_TYPES = ("t5",)  # mT5/umT5 were not trained with task prefixes
_GEN_PARAMS = (
    "num_beams",
    "length_penalty",
    "no_repeat_ngram_size",
    "early_stopping",
    "min_length",
    "repetition_penalty",
    "min_new_tokens",
)


def language_name(value: str, flag: str) -> str:
    """'de' or 'german' -> 'German' (the word a T5 prefix uses)."""
    key = value.strip()
    code = key.lower().replace("-", "_").split("_")[0]
    if code in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[code]
    if key.lower() in (name.lower() for name in LANGUAGE_NAMES.values()) or len(key) > 3:
        return key[:1].upper() + key[1:].lower()
    raise TaskToolError(
        f"unknown language code '{value}' for {flag}", f"pass the language name instead, e.g. {flag} German"
    )


def _code_of(name: str) -> str | None:
    return next((code for code, full in LANGUAGE_NAMES.items() if full.lower() == name.lower()), None)


def task_params(config, key: str) -> dict:
    params = getattr(config, "task_specific_params", None) or {}
    return dict(params.get(key) or {})


def summarization_prefix(config) -> tuple[str, dict]:
    """The input prefix and generation settings a model declares for summarization (T5: 'summarize: ')."""
    params = task_params(config, "summarization")
    default = "summarize: " if getattr(config, "model_type", "") in T5_MODEL_TYPES else ""
    prefix = params.pop("prefix", None)
    if prefix is None:
        prefix = getattr(config, "prefix", None) or default
    return prefix, params


def translation_prefix(
    config, source_lang: str | None = None, target_lang: str | None = None
) -> tuple[str, dict]:
    """T5: 'translate {Source} to {Target}: ' (from task_specific_params when the pair is there).

    With no languages given, the model's own pair when it declares exactly one, else English->French
    (the Hugging Face default); a source alone is completed only when it is unambiguous.
    """
    all_params = getattr(config, "task_specific_params", None) or {}
    pairs = [
        tuple(k[len("translation_") :].split("_to_"))
        for k in all_params
        if re.fullmatch(r"translation_\w+_to_\w+", k)
    ]
    is_t5 = getattr(config, "model_type", "") in T5_MODEL_TYPES
    if not is_t5 and not pairs:
        return getattr(config, "prefix", None) or "", {}
    source = language_name(source_lang, "--source-lang") if source_lang else None
    target = language_name(target_lang, "--target-lang") if target_lang else None
    if source is None and target is None:
        if ("en", "fr") in pairs or len(pairs) != 1:
            source, target = "English", "French"
        else:
            source, target = (
                LANGUAGE_NAMES.get(pairs[0][0], pairs[0][0]),
                LANGUAGE_NAMES.get(pairs[0][1], pairs[0][1]),
            )
    elif target is None:
        targets = [t for s, t in pairs if s == _code_of(source)]
        if len(targets) == 1:
            target = LANGUAGE_NAMES.get(targets[0], targets[0])
        elif source == "English":
            target = "French"
        else:
            raise TaskToolError(
                f"cannot tell which language to translate {source} into",
                "pass --target-lang, e.g. --target-lang English",
            )
    elif source is None:
        source = "English"
    key = f"translation_{_code_of(source)}_to_{_code_of(target)}"
    params = dict(all_params.get(key) or {})
    params.pop("prefix", None)
    return f"translate {source} to {target}: ", params


def language_codes(tokenizer) -> dict[str, int] | None:
    """Language code -> token id for tokenizers that mark languages with tokens (mBART, NLLB, M2M100); else None."""
    if hasattr(tokenizer, "lang_code_to_token") and hasattr(
        tokenizer, "get_lang_id"
    ):  # M2M100: 'fr' -> '__fr__'
        return {code: tokenizer.get_lang_id(code) for code in tokenizer.lang_code_to_token}
    mapping = getattr(tokenizer, "lang_code_to_id", None)
    if isinstance(mapping, dict) and mapping:
        return dict(mapping)
    if not isinstance(getattr(type(tokenizer), "src_lang", None), property):
        return None
    extra = getattr(tokenizer, "extra_special_tokens", None) or getattr(
        tokenizer, "additional_special_tokens", None
    )
    tokens = extra if isinstance(extra, (list, tuple)) else []
    codes = [t for t in map(str, tokens) if re.fullmatch(r"[a-z]{2,3}_[A-Za-z]{2,4}", t)]
    return {code: tokenizer.convert_tokens_to_ids(code) for code in codes} or None


def pick_code(value: str, codes: dict[str, int], flag: str) -> str:
    """Accept the exact code, or an unambiguous short form ('fr' -> 'fr_XX', 'fra' -> 'fra_Latn')."""
    if value in codes:
        return value
    lower = {c.lower(): c for c in codes}
    if value.lower() in lower:
        return lower[value.lower()]
    starts = [c for c in codes if c.lower().startswith(value.lower() + "_")]
    if len(starts) == 1:
        return starts[0]
    from tasktool.errors import nearest

    guess = starts[:3] or nearest(value, codes, n=3)
    examples = ", ".join(guess or list(codes)[:4])
    raise TaskToolError(
        f"unknown language code '{value}' for {flag}", f"this model's codes include {examples}"
    )


def language_kwargs(
    tokenizer, codes: dict[str, int], generation_config, source_lang: str | None, target_lang: str | None
) -> dict:
    """Set the tokenizer's source code; return the generate() arguments that force the target language."""
    if source_lang:
        tokenizer.src_lang = pick_code(source_lang, codes, "--source-lang")
    elif getattr(tokenizer, "src_lang", None) is None:
        raise TaskToolError(
            "this model needs the source language code",
            f"pass --source-lang, e.g. --source-lang {next(iter(codes))}",
        )
    start = getattr(generation_config, "decoder_start_token_id", None)
    if target_lang is None:
        if getattr(generation_config, "forced_bos_token_id", None) is not None or start in codes.values():
            return {}  # a single-direction checkpoint: the model already fixes the target
        examples = ", ".join(list(codes)[:3])
        raise TaskToolError(
            "this multilingual model needs a target language code",
            f"pass --target-lang (codes such as {examples}); "
            f"the source is {tokenizer.src_lang} unless --source-lang says otherwise",
        )
    target = codes[pick_code(target_lang, codes, "--target-lang")]
    if start in codes.values():  # mBART-cc25 style: the language code starts the decoder
        return {"decoder_start_token_id": target}
    return {"forced_bos_token_id": target}


def marian_target_token(tokenizer, target_lang: str | None) -> str | None:
    """Multi-target Marian models (opus-mt-en-ROMANCE) read the target from a '>>fr<<' token at the start."""
    vocab = tokenizer.get_vocab()
    targets = [t for t in vocab if t.startswith(">>") and t.endswith("<<") and len(t) <= 12]
    if not targets:
        return None
    if not target_lang:
        raise TaskToolError(
            "this model translates into several languages",
            f"pass --target-lang, e.g. --target-lang {targets[0][2:-2]}",
        )
    token = f">>{target_lang}<<"
    if token not in vocab:
        raise TaskToolError(
            f"unknown --target-lang '{target_lang}' for this model",
            f"its targets include {', '.join(t[2:-2] for t in targets[:5])}",
        )
    return token


class Seq2SeqPredictor(TextPredictor):
    """Tokenize (with the task prefix), generate, decode. Subclasses set the prefix and field name."""

    auto_class = "AutoModelForSeq2SeqLM"
    default_batch_size = 32  # as for text generation: decode steps cost about the same for 8 rows or 32
    max_padding = None  # a shorter prompt's padding costs little beside the decode steps a split would add
    output_field = "generated_text"
    fallback_new_tokens = 64

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        self.prefix, params, extra = self.setup()
        gen_config = self.model.generation_config
        default = (
            gen_config.max_new_tokens
            or params.pop("max_length", None)
            or _explicit_max_length(gen_config)
            or self.fallback_new_tokens
        )
        params.pop("max_length", None)
        kwargs = {k: v for k, v in params.items() if k in _GEN_PARAMS}
        kwargs.update(extra)
        kwargs.update(opts.generation_kwargs(default))
        self.gen_kwargs = kwargs

    def setup(self) -> tuple[str, dict, dict]:
        """(input prefix, generation settings the model declares, generate() arguments we must pass)."""
        return "", {}, {}

    def prepare(self, payload):
        if isinstance(payload, str) and payload.strip():
            payload = self.prefix + payload
        return self.tokenize(payload)

    def predict(self, batch):
        inputs = self.collate(batch, keys=("input_ids", "attention_mask"))
        output = self.model.generate(**inputs, **self.gen_kwargs)
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [{self.output_field: text.strip()} for text in texts]

    def display(self, record):
        from tasktool.io.records import short

        return {self.output_field: short(record[self.output_field], 100)}


def _explicit_max_length(gen_config) -> int | None:
    """The model's max_length when it set one (20 is the library default, not a choice)."""
    value = getattr(gen_config, "max_length", None)
    return value if value and value != 20 else None


class Summarization(Seq2SeqPredictor):
    output_field = "summary_text"
    fallback_new_tokens = 64

    def setup(self):
        prefix, params = summarization_prefix(self.model.config)
        return prefix, params, {}


class Translation(Seq2SeqPredictor):
    output_field = "translation_text"
    fallback_new_tokens = 128

    def setup(self):
        opts, config = self.opts, self.model.config
        codes = language_codes(self.tokenizer)
        if codes:
            extra = language_kwargs(
                self.tokenizer, codes, self.model.generation_config, opts.source_lang, opts.target_lang
            )
            return "", {}, extra
        if getattr(config, "model_type", "") == "marian":
            token = marian_target_token(self.tokenizer, opts.target_lang)
            return (token + " " if token else ""), {}, {}
        prefix, params = translation_prefix(config, opts.source_lang, opts.target_lang)
        return prefix, params, {}
