"""text-generation: continue a prompt with a causal LM (GPT-2 style), or answer a chat conversation.

Batches are LEFT-padded so every prompt ends where generation starts; `generate` derives the
position ids from the attention mask, so a padded batch gives the same text as one prompt at a
time. A prompt longer than the context window keeps its LAST tokens (the ones the continuation
follows), leaving room for --max-new-tokens.

Chat: an input that is a conversation (`messages`, a list of {role, content}), or a plain prompt with
--chat (one user turn, after the --system one), is rendered by the tokenizer's chat template with the
generation prompt; the record holds `messages` and the assistant's `response`. `chat_response` is the
whole path for one conversation (what a server would call).
"""

from __future__ import annotations

from tasktool.errors import ItemError, TaskToolError
from tasktool.tasks.text import TextPredictor, model_max_length
from tasktool.tasks.text_generation import chat

DEFAULT_MAX_NEW_TOKENS = 50


class TextGeneration(TextPredictor):
    padding_side = "left"
    default_batch_size = 32
    max_padding = None  # a shorter prompt's padding costs little beside the decode steps a split would add

    @classmethod
    def default_batch_for(cls, model: str) -> int:
        """64 on an exported decoder: its prompt pass runs in length groups of 8 whatever the batch,
        so a larger batch only means fewer, fuller decode steps (benchmarks/onnx_generation.py)."""
        from tasktool import backends

        exported = (
            backends.is_exported(model) and backends.read_manifest(model).get("graphs") == "decoder-only"
        )
        return 64 if exported else cls.default_batch_size

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        tok, gen_config = self.tokenizer, self.model.generation_config
        if opts.chat_template:
            tok.chat_template = chat.read_template(opts.chat_template)
        if opts.chat:
            chat.require_template(tok, opts.model)
        if tok.pad_token is None:  # GPT-2 and most causal LMs have no pad token: pad with eos (masked anyway)
            if tok.eos_token is None:
                raise TaskToolError(
                    f"tokenizer of '{opts.model}' has neither a pad nor an eos token",
                    "this model cannot be batched; check the model folder",
                )
            tok.pad_token = tok.eos_token
        if gen_config.pad_token_id is None:
            gen_config.pad_token_id = tok.pad_token_id
        self.gen_kwargs = opts.generation_kwargs(gen_config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
        self.max_new_tokens = self.gen_kwargs["max_new_tokens"]
        self.stop = [s for s in (opts.stop or []) if s]
        if self.stop:
            self.gen_kwargs["stop_strings"] = self.stop
        eos = gen_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if not opts.do_sample and (opts.temperature is not None or opts.top_p is not None):
            from tasktool.console import warn

            warn("--temperature and --top-p apply with --do-sample; without it decoding is greedy")
        if opts.seed is not None:
            from transformers import set_seed

            set_seed(int(opts.seed))
        context = model_max_length(tok, self.model.config)
        room = context - self.max_new_tokens
        if room < 1:
            raise TaskToolError(
                f"--max-new-tokens {self.max_new_tokens} leaves no room for the prompt in the model's "
                f"context of {context} tokens",
                f"use --max-new-tokens below {context}",
            )
        self.prompt_limit = min(room, opts.max_length) if opts.max_length else room
        self._warned_truncation = False

    # ------------------------------------------------------------------ inputs
    def conversation(self, payload) -> list[dict] | None:
        """The payload as a checked conversation, or None for a plain prompt."""
        if isinstance(payload, dict) and "messages" in payload:
            payload = payload["messages"]
        if chat.is_chat(payload) or (isinstance(payload, list) and payload):
            messages = chat.check_messages(payload)
        elif self.opts.chat:
            if not isinstance(payload, str) or not payload.strip():
                raise ItemError("empty prompt", "give non-empty text")
            return chat.wrap_prompt(payload, self.opts.system)
        else:
            return None
        if self.opts.system and messages[0]["role"] != "system":
            messages = chat.wrap_prompt("", self.opts.system)[:1] + messages
        if messages[-1]["role"] == "assistant":
            raise ItemError(
                "the conversation ends with the assistant's turn: there is nothing to answer",
                "end it with a user turn",
            )
        return messages

    def prepare(self, payload):
        messages = self.conversation(payload)
        if messages is not None:
            chat.require_template(self.tokenizer, self.opts.model)
            ids = chat.prompt_ids(self.tokenizer, messages)
            if len(ids) > self.prompt_limit:
                raise ItemError(
                    f"the conversation is {len(ids)} tokens, more than the {self.prompt_limit} the context "
                    f"leaves after --max-new-tokens {self.max_new_tokens}",
                    "shorten it or lower --max-new-tokens",
                )
            return {"messages": messages, "input_ids": ids, "attention_mask": [1] * len(ids)}
        if not isinstance(payload, str) or not payload.strip():
            raise ItemError("empty prompt", "give non-empty text")
        full = self.tokenizer(payload)["input_ids"]
        ids = truncate_left(full, self.prompt_limit, self.tokenizer.bos_token_id)
        if len(ids) < len(full) and not self._warned_truncation:
            from tasktool.console import warn

            self._warned_truncation = True
            warn(
                f"a prompt of {len(full)} tokens keeps only its last {len(ids)} "
                f"(context window minus --max-new-tokens {self.max_new_tokens})"
            )
        return {"prompt": payload, "input_ids": ids, "attention_mask": [1] * len(ids)}

    def length(self, prepared) -> int:
        return len(prepared["input_ids"]) + self.max_new_tokens

    # ------------------------------------------------------------------ generation
    def predict(self, batch):
        inputs = self.collate(batch, keys=("input_ids", "attention_mask"))
        kwargs = dict(self.gen_kwargs)
        if self.stop:
            kwargs["tokenizer"] = self.tokenizer  # stop_strings are matched on decoded tokens
        if self.opts.stream and len(batch) == 1:
            from transformers import TextStreamer

            kwargs["streamer"] = TextStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        output = self.model.generate(**inputs, **kwargs)
        width = inputs["input_ids"].shape[1]
        return [self.record(item, row) for item, row in zip(batch, output[:, width:].tolist(), strict=True)]

    def record(self, item: dict, new_ids: list[int]) -> dict:
        if "messages" in item:
            text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
            cut, stopped = cut_at(text, self.stop)
            ended = stopped or any(t in self.eos_ids for t in new_ids)
            return {
                "messages": item["messages"],
                "response": cut.strip(),
                "finish_reason": "stop" if ended else "length",
            }
        continuation, _ = cut_at(self.continuation(item["input_ids"], new_ids), self.stop)
        return {"generated_text": item["prompt"] + continuation, "continuation": continuation}

    # ------------------------------------------------------------------ one conversation (the HTTP server)
    def chat(self, messages: list[dict], **options) -> dict:
        """One conversation -> its reply, for `tasktool serve`'s /v1/chat/completions: `options` (only
        those a client set: max_new_tokens, temperature, top_p, stop, seed) override this run's for
        this request. A bad conversation raises TaskToolError (the server answers 422)."""
        import torch

        prepared, kwargs, stop = self._chat_call(messages, options)
        with torch.inference_mode():
            output = self.model.generate(
                **self.collate([prepared], keys=("input_ids", "attention_mask")), **kwargs
            )
        new_ids = output[0, len(prepared["input_ids"]) :].tolist()
        text, stopped = cut_at(self.tokenizer.decode(new_ids, skip_special_tokens=True), stop)
        ended = stopped or any(t in self.eos_ids for t in new_ids)
        return {
            "text": text.strip(),
            "finish_reason": "stop" if ended else "length",
            "prompt_tokens": len(prepared["input_ids"]),
            "completion_tokens": len(new_ids),
        }

    def chat_stream(self, messages: list[dict], **options):
        """`chat`, in pieces as they are generated (transformers' TextIteratorStreamer); text that could
        be the start of a stop string is held back until it is not."""
        import threading

        import torch
        from transformers import TextIteratorStreamer

        prepared, kwargs, stop = self._chat_call(messages, options)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self.collate([prepared], keys=("input_ids", "attention_mask"))

        def run():
            with torch.inference_mode():
                self.model.generate(**inputs, **kwargs, streamer=streamer)

        worker = threading.Thread(target=run, name="tasktool-chat-stream", daemon=True)
        worker.start()
        held, sent, hold = "", 0, max((len(s) for s in stop), default=1) - 1
        stopped = False
        for piece in streamer:
            held += piece
            text, stopped = cut_at(held, stop)
            if stopped:
                if len(text) > sent:
                    yield text[sent:]
                break
            safe = len(held) - hold
            if safe > sent:
                yield held[sent:safe]
                sent = safe
        if stopped:
            for _ in streamer:  # generation ends at the stop string too: let it finish
                pass
        elif len(held) > sent:
            yield held[sent:]
        worker.join()

    def _chat_call(self, messages, options: dict):
        """The prepared conversation, generate() arguments and stop strings for one request."""
        try:
            prepared = self.prepare(list(messages))
        except ItemError as exc:
            raise TaskToolError(exc.message, exc.hint) from exc
        if "messages" not in prepared:
            raise TaskToolError("messages must be a list of {role, content}", "see the OpenAI chat format")
        kwargs = dict(self.gen_kwargs)
        if options.get("max_new_tokens"):
            kwargs["max_new_tokens"] = int(options["max_new_tokens"])
        temperature, top_p = options.get("temperature"), options.get("top_p")
        if temperature == 0:
            kwargs["do_sample"] = False
        elif temperature is not None or top_p is not None:
            kwargs["do_sample"] = True
            kwargs.update(
                {k: v for k, v in (("temperature", temperature), ("top_p", top_p)) if v is not None}
            )
        if not kwargs.get("do_sample"):
            for key in ("temperature", "top_p", "top_k"):
                kwargs.pop(key, None)
        if options.get("seed") is not None:
            from transformers import set_seed

            set_seed(int(options["seed"]))
        stop = [s for s in (options.get("stop") or self.stop) if s]
        kwargs.pop("stop_strings", None)
        if stop:
            kwargs["stop_strings"], kwargs["tokenizer"] = stop, self.tokenizer
        return prepared, kwargs, stop

    def continuation(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        """Decode prompt+new and cut the decoded prompt off, so a leading space (SentencePiece) survives."""
        decode = self.tokenizer.decode
        prefix = decode(prompt_ids, skip_special_tokens=True)
        full = decode(list(prompt_ids) + list(new_ids), skip_special_tokens=True)
        if full.startswith(prefix):
            return full[len(prefix) :]
        return decode(new_ids, skip_special_tokens=True)

    def display(self, record):
        from tasktool.io.writers import short

        if "response" in record:
            return {"response": short(record["response"], 100)}
        return {"continuation": short(record["continuation"], 100)}


def chat_response(predictor: TextGeneration, messages: list[dict]) -> dict:
    """One conversation in, its record out ({messages, response, finish_reason}): the whole chat path
    (checks, template, generation, stop strings) for a caller that holds a loaded predictor."""
    import torch

    with torch.inference_mode():
        return predictor.predict([predictor.prepare(messages)])[0]


def cut_at(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the first of the stop strings (which is left out), and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def truncate_left(ids: list[int], limit: int, bos_id: int | None = None) -> list[int]:
    """Keep the last `limit` tokens (they lead into the continuation), and a leading BOS if there was one."""
    if len(ids) <= limit:
        return list(ids)
    if bos_id is not None and ids and ids[0] == bos_id and limit > 1:
        return [ids[0], *ids[len(ids) - limit + 1 :]]
    return list(ids[len(ids) - limit :])


Predictor = TextGeneration
