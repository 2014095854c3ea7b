"""Chat conversations: checking `messages`, rendering them with the tokenizer's chat template, and the
assistant-only training labels.

A conversation is a list of {"role", "content"} messages (the OpenAI / Hugging Face format). For
inference the template renders it with the generation prompt (`apply_chat_template(...,
add_generation_prompt=True)`); the model writes the assistant's reply.

For training and perplexity only the assistant turns are scored, as TRL's SFT does with
`assistant_only_loss`: every other token's label is -100. The assistant tokens come from the template's
`{% generation %}` markers (`return_assistant_tokens_mask`); a template without them is first patched by
TRL's `get_training_chat_template` where TRL knows it (Llama 3, Qwen, Gemma, Phi-3, ...), otherwise each
assistant turn is found by rendering the conversation up to it (with the generation prompt) and through
it, and the characters in between are the assistant's.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import ItemError, TaskToolError, first_line

ROLES = ("system", "user", "assistant", "tool")
CHAT_COLUMNS = ("messages", "conversations", "conversation")
TEMPLATE_FIX = "--chat-template FILE"


def is_chat(value) -> bool:
    """A list of role/content dicts (what `messages` holds)."""
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def check_messages(value, where: str = "", error=ItemError, need_assistant: bool = False) -> list[dict]:
    """The messages, checked: known roles, text content, no empty assistant turn. `error` is the exception
    class (ItemError for one inference input, TaskToolError for a data row)."""
    at = f"{where}: " if where else ""
    if not isinstance(value, list) or not value:
        raise error(f"{at}messages must be a non-empty list of {{role, content}}", "see the chat format")
    out = []
    for i, message in enumerate(value, 1):
        if not isinstance(message, dict) or "role" not in message:
            raise error(f"{at}message {i} is not a {{role, content}} object", "give each message a role")
        role = message["role"]
        if role not in ROLES:
            raise error(f"{at}message {i} has unknown role '{role}'", f"roles are {', '.join(ROLES)}")
        content = _text(message.get("content"), error, f"{at}message {i} ({role})")
        if role == "assistant" and not content.strip() and not message.get("tool_calls"):
            raise error(
                f"{at}message {i} is an empty assistant turn", "give the assistant's reply or drop it"
            )
        out.append({**message, "content": content})
    if need_assistant and not any(m["role"] == "assistant" for m in out):
        raise error(f"{at}the conversation has no assistant turn to learn from", "add the assistant's reply")
    return out


def _text(content, error, what: str) -> str:
    """Content as text: a string, or a list of {"type": "text", "text": ...} parts joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise error(f"{what} content must be text", "give a string (or a list of text parts)")


def wrap_prompt(prompt: str, system: str | None = None) -> list[dict]:
    """A plain prompt as a conversation (--chat): one user turn, after the --system one if given."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def read_template(value: str, flag: str = "--chat-template") -> str:
    """A chat template from a file (or the template text itself, where it holds Jinja tags)."""
    if "{%" in value or "{{" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise TaskToolError(f"chat template file '{value}' not found", f"give {flag} a Jinja template file")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise TaskToolError(f"chat template file '{value}' is empty", "give a Jinja chat template")
    return text


def require_template(tokenizer, model_ref: str, fix: str = TEMPLATE_FIX) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise TaskToolError(
            f"the tokenizer of '{model_ref}' has no chat template, so it cannot render `messages`",
            f"pass {fix}: a Jinja chat template for this model",
        )


def _template_error(exc: Exception, error=ItemError):
    first = first_line(exc)
    return error(f"the chat template refused the conversation: {first}", "check the roles and their order")


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The token ids of the conversation with the generation prompt, as the model sees it."""
    try:
        out = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
    except Exception as exc:  # noqa: BLE001 - jinja2 TemplateError and friends: the template's own words
        raise _template_error(exc) from exc
    return list(out["input_ids"])


class AssistantLabels:
    """Conversations -> input_ids and labels, -100 on every token that is not the assistant's."""

    def __init__(self, tokenizer, model_ref: str = "the model", fix: str = TEMPLATE_FIX):
        require_template(tokenizer, model_ref, fix)
        self.tokenizer = tokenizer
        self.template = self._marked_template()

    def _marked_template(self) -> str | None:
        """A template with {% generation %} markers (the tokenizer's, or TRL's patched copy), else None."""
        from trl.chat_template_utils import get_training_chat_template, has_generation_markers

        own = self.tokenizer.chat_template
        if has_generation_markers(own):
            return own if isinstance(own, str) else own["default"]
        try:
            patched = get_training_chat_template(self.tokenizer)
        except Exception:  # noqa: BLE001 - TRL does not know (or cannot probe) it: find the turns by rendering
            return None
        return patched

    def __call__(self, messages: list[dict], limit: int | None = None) -> dict | None:
        """Features of one conversation, cut to `limit` tokens; None when no assistant token is left."""
        if self.template is not None:
            ids, mask = self._by_markers(messages)
        else:
            ids, mask = self._by_rendering(messages)
        if limit:
            ids, mask = ids[:limit], mask[:limit]
        if not any(mask):
            return None
        labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}

    def _by_markers(self, messages):
        try:
            out = self.tokenizer.apply_chat_template(
                messages,
                chat_template=self.template,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
        except Exception as exc:  # noqa: BLE001 - jinja2 TemplateError and friends
            raise _template_error(exc, TaskToolError) from exc
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        if not any(mask):
            raise TaskToolError(
                "the chat template's {% generation %} markers enclose no assistant text",
                f"fix the template, or give one with {TEMPLATE_FIX}",
            )
        return ids, mask

    def _render(self, messages, generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        except Exception as exc:  # noqa: BLE001 - jinja2 TemplateError and friends
            raise _template_error(exc, TaskToolError) from exc

    def _by_rendering(self, messages):
        """Assistant spans found by rendering: text up to turn i (generation prompt on) .. through turn i."""
        text = self._render(messages, False)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            before = self._render(messages[:i], True) if i else ""
            through = self._render(messages[: i + 1], False)
            if not (text.startswith(through) and through.startswith(before)):
                raise TaskToolError(
                    "the chat template renders earlier turns differently as the conversation goes on, so "
                    "the assistant's tokens cannot be told apart",
                    f"give a template with {{% generation %}} markers with {TEMPLATE_FIX}",
                )
            spans.append((len(before), len(through)))
        if not getattr(self.tokenizer, "is_fast", False):
            raise TaskToolError(
                "this (slow) tokenizer cannot map tokens to characters to find the assistant's tokens",
                f"give a template with {{% generation %}} markers with {TEMPLATE_FIX}",
            )
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        mask = [
            int(any(lo <= start < hi for lo, hi in spans) and end > start)
            for start, end in enc["offset_mapping"]
        ]
        return list(enc["input_ids"]), mask
