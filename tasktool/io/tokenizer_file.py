"""A WordPiece tokenizer.json run by the `tokenizers` library directly, for exported BERT-family models.

transformers' fast tokenizers are this same `tokenizers.Tokenizer` underneath; importing transformers
to reach it costs about a second (it indexes every model module), which is a sixth of a whole
int8 classification run over 2,500 sentences (benchmarks/onnx_speed.py). This class gives the text
predictors the part of the transformers tokenizer call they use (`tokenizer(texts, truncation=True,
max_length=...)`, pairs, word lists, offsets, special-token masks, word ids) and nothing else.

It is used only for an exported folder whose tokenizer_config.json names the generic fast class or a
BERT-family one (their call is the tokenizer.json and nothing more: no prefix-space rules, no
Python-side normalisation);
any other folder loads through transformers. tests/test_export.py checks the encodings are equal to
AutoTokenizer's.
"""

from __future__ import annotations

import json
from pathlib import Path

# the tokenizer classes whose call is exactly their tokenizer.json's pipeline (the generic fast
# tokenizer, and the BERT family's WordPiece ones)
PLAIN_CLASSES = frozenset(
    {
        "PreTrainedTokenizerFast",
        "TokenizersBackend",
        "BertTokenizer",
        "BertTokenizerFast",
        "DistilBertTokenizer",
        "DistilBertTokenizerFast",
        "ElectraTokenizer",
        "ElectraTokenizerFast",
        "MobileBertTokenizer",
        "MobileBertTokenizerFast",
    }
)


def plain_tokenizer_config(folder: str | Path) -> dict | None:
    """tokenizer_config.json when the folder's tokenizer is one this module can run, else None."""
    folder = Path(folder).expanduser()
    if not (folder / "tokenizer.json").is_file():
        return None
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict) or config.get("tokenizer_class") not in PLAIN_CLASSES:
        return None
    if "auto_map" in config or config.get("add_prefix_space") or not _content(config.get("pad_token")):
        return None
    return config


def _content(token) -> str | None:
    return token.get("content") if isinstance(token, dict) else token


class Encodings(dict):
    """The columns of a tokenizer call (lists per text, or one flat list for a single text), with
    `.encodings` and `.word_ids()` as transformers' BatchEncoding has them."""

    def __init__(self, columns: dict, encodings: list):
        super().__init__(columns)
        self.encodings = encodings

    def word_ids(self, index: int = 0) -> list:
        return self.encodings[index].word_ids


class TokenizerFile:
    """`tokenizers.Tokenizer.from_file(tokenizer.json)` behind the transformers call the text predictors
    make. `padding_side` and `max_length` behave as in transformers; padding is the collate's job."""

    is_fast = True

    def __init__(self, folder: str | Path, config: dict):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(Path(folder).expanduser() / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.padding_side = config.get("padding_side", "right")
        self.truncation_side = config.get("truncation_side", "right")
        self.model_max_length = int(config.get("model_max_length") or 1_000_000_000_000_000_000)
        self.pad_token = _content(config.get("pad_token"))
        self.pad_token_id = self._tokenizer.token_to_id(self.pad_token) if self.pad_token else None
        self.pad_token_type_id = int(config.get("pad_token_type_id") or 0)
        added = self._tokenizer.get_added_tokens_decoder().values()
        self.all_special_tokens = [t.content for t in added if t.special]
        self._truncation: int | None = None

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def _truncate(self, max_length: int | None) -> None:
        if max_length == self._truncation:
            return
        if max_length is None:
            self._tokenizer.no_truncation()
        else:
            self._tokenizer.enable_truncation(
                max_length, strategy="longest_first", direction=self.truncation_side
            )
        self._truncation = max_length

    def __call__(
        self,
        text,
        text_pair=None,
        *,
        truncation: bool = False,
        max_length: int | None = None,
        is_split_into_words: bool = False,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
    ) -> Encodings:
        single = isinstance(text, str) or (is_split_into_words and text and isinstance(text[0], str))
        self._truncate((max_length or self.model_max_length) if truncation else None)
        if single:
            inputs = [text if text_pair is None else (text, text_pair)]
        else:
            inputs = list(text) if text_pair is None else list(zip(text, text_pair, strict=True))
        encodings = self._tokenizer.encode_batch(inputs, is_pretokenized=is_split_into_words)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
        }
        if return_offsets_mapping:
            columns["offset_mapping"] = [e.offsets for e in encodings]
        if return_special_tokens_mask:
            columns["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if single:
            columns = {k: v[0] for k, v in columns.items()}
        return Encodings(columns, encodings)
