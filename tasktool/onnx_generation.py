"""An exported generator run by ONNX Runtime under transformers' own `generate`, as optimum's
ORTModelForSeq2SeqLM and ORTModelForCausalLM do: every decoding strategy, logits processor and stopping rule
(Whisper's language and task tokens included) is transformers', only the forward passes are ONNX Runtime's.

- an encoder-decoder (tasktool/export/encoder_decoder.py): the encoder graph is generate's encoder, the
  decoder graph every step's forward;
- a decoder-only language model (tasktool/export/decoder_only.py): its one graph every step's forward.

The model object is the architecture's own transformers class, built on the meta device (no weights: the
graphs hold them). generate's cache keeps the keys and values between steps as it does for the torch
model, and beam search reorders them: an encoder-decoder's decoder graph returns the cache with the new
tokens', which replaces generate's; a decoder-only graph returns the new tokens' alone, written in place
into buffers generate's cache views (no step copies the cache).
"""

from __future__ import annotations

from pathlib import Path

from tasktool.errors import TaskToolError


def cross_names(layers: int) -> list[str]:
    """The decoder graph's inputs for the cross-attention keys and values (the encoder graph's outputs)."""
    return [f"cross.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def past_names(layers: int) -> list[str]:
    return [f"past.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def present_names(layers: int) -> list[str]:
    return [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def new_names(layers: int) -> list[str]:
    """The decoder-only graph's outputs: the new tokens' keys and values (the runtime's buffers hold the rest)."""
    return [f"new.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


class _OnnxGenerator:
    """Mixed in before the transformers class: CPU float32 tensors, no weights to move."""

    backend = "onnxruntime"

    @property
    def device(self):
        import torch

        return torch.device("cpu")

    @property
    def dtype(self):
        import torch

        return torch.float32

    def to(self, *args, **kwargs):
        return self


class _OnnxEncoderDecoder(_OnnxGenerator):
    """The encoder graph as generate's encoder, the decoder graph as the forward of every step."""

    def attach(self, encoder, decoder, inputs: list[str]) -> None:
        """encoder, decoder: tasktool.backends.OnnxModel sessions of the two graphs."""
        self._graphs = (encoder, decoder)
        self._encoder_inputs = inputs
        self._encoder_module = _Encoder(encoder, inputs)

    def get_encoder(self, *args, **kwargs):
        return self._encoder_module

    def forward(
        self, decoder_input_ids=None, encoder_outputs=None, past_key_values=None, cache=None, **kwargs
    ):
        from transformers import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import Seq2SeqLMOutput

        if encoder_outputs is None:
            encoder_outputs = self._encoder_module(**kwargs)
        cache = cache if cache is not None else past_key_values  # transformers 5 renames it `cache`
        if cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        batch = decoder_input_ids.shape[0]
        cross = cache.cross_attention_cache
        if not cache.is_updated.get(0):
            for i, (k, v) in enumerate(pairs(encoder_outputs.cross_key_values)):
                cross.update(_rows(k, batch), _rows(v, batch), i)
                cache.is_updated[i] = True
        layers = len(cross.layers)
        first = cross.layers[0].keys
        source = first.shape[2]
        mask = kwargs.get("attention_mask")
        feed = {
            "decoder_input_ids": decoder_input_ids,
            "encoder_attention_mask": mask if mask is not None else _ones(batch, source),
        }
        own = cache.self_attention_cache
        if own.get_seq_length() == 0:
            empty = first.new_zeros((batch, first.shape[1], 0, first.shape[3]))
            feed.update((name, empty) for name in past_names(layers))
        else:
            feed.update(zip(past_names(layers), flat(own), strict=True))
        feed.update(zip(cross_names(layers), flat(cross), strict=True))
        out = self._graphs[1](**feed)
        _store(own, pairs([out[n] for n in self._graphs[1].output_names[1:]]))
        return Seq2SeqLMOutput(
            logits=out["logits"],
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            **{cache_field(Seq2SeqLMOutput): cache},
        )


class _OnnxCausalLM(_OnnxGenerator):
    """The decoder graph as the forward of every step, over cache buffers kept for each generate call.

    The graph gives only the new tokens' keys and values; they are written in place into buffers with
    room to spare (the graph reads a buffer's empty slots masked out), and generate's cache holds views
    of the written part, so its length, and beam search's reordering, work as usual (a reordered cache
    is copied into fresh buffers on the next step). The prompt step runs the batch in groups of similar
    length, each padded only to its own longest prompt and written into the batch's left-padded columns:
    the padded positions are masked on every later step, so the text is the same, and the prompt pass
    costs the real tokens instead of the batch's longest prompt times its rows."""

    # rows per prompt-pass group (sorted by length): GPT-2 small, 48 prompts of 4-40 words, the prompt pass
    # took 1.60 s in groups of 8 against 1.84 s in 16s (less padding) and 2.07 s one prompt at a time
    prompt_group = 8
    room = 32  # slots a buffer gets beyond what it holds when it is made or grows

    def attach(self, decoder) -> None:
        """decoder: the tasktool.backends.OnnxModel session of the graph."""
        import weakref

        if not any(name.startswith("new.") for name in decoder.output_names):
            raise TaskToolError(
                f"'{decoder.path.parent}' was exported by an earlier tasktool, whose graph copies the cache",
                "export the model again with `tasktool export`",
            )
        self._graph = decoder
        # each cache input's (heads, head size), fixed in the graph's input shapes
        self._past = {
            i.name: (int(i.shape[1]), int(i.shape[3]))
            for i in decoder.session().get_inputs()
            if i.name.startswith("past.")
        }
        self._buffers = weakref.WeakKeyDictionary()  # generate's cache -> _Buffers

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        cache=None,
        logits_to_keep=0,
        **kwargs,
    ):
        import torch
        from transformers import DynamicCache
        from transformers.modeling_outputs import CausalLMOutputWithPast

        if logits_to_keep != 1:  # generate asks for 1 (greedy, sampling, beams); perplexity wants them all
            raise TaskToolError(
                "an exported text-generation graph gives the last position's logits only (what generate "
                "reads), not every position's",
                "score or evaluate with the torch model it came from",
            )
        cache = cache if cache is not None else past_key_values
        if cache is None:
            cache = DynamicCache()
        if attention_mask is None:
            attention_mask = torch.ones(
                input_ids.shape[0], cache.get_seq_length() + input_ids.shape[1], dtype=torch.long
            )
        if position_ids is None:
            position_ids = positions(attention_mask)[:, -input_ids.shape[1] :]
        if cache.get_seq_length() == 0:
            buffers = self._buffers[cache] = _Buffers.empty(
                list(self._past.values()), input_ids.shape, self.room
            )
            logits = self._prompt_pass(buffers, input_ids, attention_mask, position_ids)
        else:
            buffers = self._buffers.setdefault(cache, _Buffers([], 0, self.room))
            buffers.hold(cache)
            logits = self._step(buffers, input_ids, attention_mask, position_ids)
        buffers.expose(cache)
        return CausalLMOutputWithPast(logits=logits, **{cache_field(CausalLMOutputWithPast): cache})

    def _step(self, buffers, input_ids, attention_mask, position_ids):
        start, new = buffers.filled, input_ids.shape[1]
        buffers.reserve(start + new)
        capacity = buffers.capacity
        # the slots so far, the empty ones (masked), then the new tokens: the graph attends over all
        mask = attention_mask.new_zeros((attention_mask.shape[0], capacity + new))
        mask[:, :start] = attention_mask[:, :start]
        mask[:, capacity:] = attention_mask[:, start:]
        out = self._graph(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            **dict(zip(self._past, buffers.tensors, strict=True)),
        )
        buffers.write(slice(None), start, [out[n] for n in self._graph.output_names[1:]])
        buffers.filled = start + new
        return out["logits"]

    def _prompt_pass(self, buffers, input_ids, attention_mask, position_ids):
        """The first step in length groups; the last position's logits for the whole batch."""
        import torch

        batch, width = input_ids.shape
        mask = attention_mask[:, -width:]
        lengths = mask.sum(dim=1)
        order = torch.argsort(lengths, stable=True).tolist()
        # left padding (real tokens last) is what lets a group drop its leading columns; any other
        # layout runs as one group over the whole width, as generate gave it
        left_padded = bool((mask[:, 1:] >= mask[:, :-1]).all())
        group = self.prompt_group if left_padded else batch
        logits = None
        for start in range(0, batch, group):
            rows = order[start : start + group]
            keep = max(int(lengths[rows].max()), 1) if left_padded else width
            empty = torch.zeros((len(rows), 1), dtype=attention_mask.dtype)  # the one masked slot
            out = self._graph(
                input_ids=input_ids[rows, -keep:],
                attention_mask=torch.cat([empty, attention_mask[rows, -keep:]], dim=1),
                position_ids=position_ids[rows, -keep:],
                **{n: torch.zeros((len(rows), heads, 1, size)) for n, (heads, size) in self._past.items()},
            )
            if logits is None:
                logits = out["logits"].new_zeros((batch, *out["logits"].shape[1:]))
            logits[rows] = out["logits"]
            buffers.write(rows, width - keep, [out[n] for n in self._graph.output_names[1:]])
        buffers.filled = width
        return logits


class _Buffers:
    """One generate call's keys and values, per layer, in tensors [batch, heads, capacity, size] of
    which the first `filled` slots are written; the rest are zeros (masked, and finite: a masked slot
    still enters the weighted sum, with weight 0)."""

    def __init__(self, tensors: list, filled: int, room: int):
        self.tensors, self.filled, self.room = tensors, filled, room

    @classmethod
    def empty(cls, shapes: list[tuple[int, int]], batch_shape, room: int) -> _Buffers:
        """Buffers for a prompt batch of `batch_shape` (rows, width); shapes: each input's (heads, size)."""
        import torch

        batch, width = batch_shape
        return cls([torch.zeros((batch, heads, width + room, size)) for heads, size in shapes], 0, room)

    @property
    def capacity(self) -> int:
        return self.tensors[0].shape[2]

    def hold(self, cache) -> None:
        """Make these buffers hold what generate's cache holds: nothing to do while its layers are views
        of them; once beam search has reordered them (new tensors), a copy."""
        given = flat(cache)
        if len(given) == len(self.tensors) and all(
            g.data_ptr() == t.data_ptr() and g.shape[0] == t.shape[0] and g.shape[2] == self.filled
            for g, t in zip(given, self.tensors, strict=True)
        ):
            return
        self.filled = given[0].shape[2]
        self.tensors = [self._roomy(g, self.filled + self.room) for g in given]

    def reserve(self, needed: int) -> None:
        if needed > self.capacity:
            self.tensors = [self._roomy(t[:, :, : self.filled], needed + self.room) for t in self.tensors]

    def write(self, rows, start: int, parts: list) -> None:
        """The graph's new keys and values into slots start.. of `rows` (the caller moves `filled`)."""
        for tensor, part in zip(self.tensors, parts, strict=True):
            tensor[rows, :, start : start + part.shape[2]] = part

    def expose(self, cache) -> None:
        """generate's cache as views of the written slots (its length and reordering read them)."""
        views = pairs([t[:, :, : self.filled] for t in self.tensors])
        if cache.get_seq_length() == 0:
            for i, (k, v) in enumerate(views):
                cache.update(k, v, i)  # initialises the layers
        for layer, (k, v) in zip(cache.layers, views, strict=True):
            layer.keys, layer.values = k, v

    @staticmethod
    def _roomy(tensor, capacity: int):
        out = tensor.new_zeros((*tensor.shape[:2], capacity, tensor.shape[3]))
        out[:, :, : tensor.shape[2]] = tensor
        return out


def _store(cache, present: list[tuple]) -> None:
    """Put an encoder-decoder's keys and values (the cache so far with the new tokens) into generate's cache.

    The first step fills it through `update`; later ones replace each layer's tensors: the graph has
    already concatenated the new tokens, and `update` would concatenate a second copy (a large share
    of a CPU run: README, "Generation through ONNX Runtime")."""
    if cache.get_seq_length() == 0:
        for i, (k, v) in enumerate(present):
            cache.update(k, v, i)
        return
    for layer, (k, v) in zip(cache.layers, present, strict=True):
        layer.keys, layer.values = k, v


def positions(mask):
    """The position ids generate gives a left-padded batch: counted over real tokens (pads at 1)."""
    positions = mask.long().cumsum(-1) - 1
    return positions.masked_fill(mask == 0, 1)


def cache_field(output_class) -> str:
    """The name transformers gives the cache in model outputs: `cache` (5.x), `past_key_values` before."""
    return "cache" if "cache" in output_class.__dataclass_fields__ else "past_key_values"


def _encoder_output_class():
    from dataclasses import dataclass

    import torch
    from transformers.modeling_outputs import BaseModelOutput

    @dataclass
    class EncoderOutput(BaseModelOutput):
        """The encoder's states, and every decoder layer's cross-attention keys and values from them."""

        cross_key_values: tuple[torch.Tensor, ...] | None = None

    return EncoderOutput


def _encoder_module_class():
    import torch

    class Encoder(torch.nn.Module):
        """What generate calls as the model's encoder: the encoder graph."""

        main_input_name = "input_ids"

        def __init__(self, graph, inputs: list[str]):
            super().__init__()
            self.graph, self.inputs = graph, inputs
            self.output_class = _encoder_output_class()

        def forward(self, input_ids=None, attention_mask=None, input_features=None, **kwargs):
            given = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "input_features": input_features,
            }
            out = self.graph(**{name: given[name] for name in self.inputs})
            values = [out[name] for name in self.graph.output_names]
            return self.output_class(last_hidden_state=values[0], cross_key_values=tuple(values[1:]))

    return Encoder


def _Encoder(graph, inputs: list[str]):  # noqa: N802 - builds the class above on first use
    return _encoder_module_class()(graph, inputs)


def pairs(tensors) -> list[tuple]:
    """(key, value) per layer from the flat list the graphs take and give."""
    return [(tensors[i], tensors[i + 1]) for i in range(0, len(tensors), 2)]


def flat(cache) -> list:
    """A cache's keys and values as the flat list the graphs take: layer 0 key, layer 0 value, ..."""
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def _rows(tensor, batch: int):
    """The encoder's batch widened to generate's (beams or return sequences: each input repeated)."""
    rows = tensor.shape[0]
    return tensor if rows == batch else tensor.repeat_interleave(batch // rows, dim=0)


def _ones(batch: int, length: int):
    import torch

    return torch.ones((batch, length), dtype=torch.long)


def build(folder: Path, config, manifest: dict, decoder, encoder=None):
    """The exported generator in `folder` as its transformers class over its graphs' sessions
    (tasktool.backends.OnnxModel: backends.load opens them); an encoder-decoder has an encoder graph."""
    import torch
    import transformers
    from transformers import GenerationConfig

    architecture = manifest.get("architecture", "")
    base = getattr(transformers, architecture, None)
    if base is None:
        raise TaskToolError(
            f"'{folder}' does not say which transformers class it was exported from",
            "export the model again with `tasktool export`",
        )
    mixin = _OnnxEncoderDecoder if encoder is not None else _OnnxCausalLM
    cls = type(f"Onnx{architecture}", (mixin, base), {})
    with torch.device("meta"):
        model = cls(config)
    model.generation_config = (
        GenerationConfig.from_pretrained(folder)
        if (folder / "generation_config.json").is_file()
        else GenerationConfig.from_model_config(config)
    )
    if encoder is not None:
        model.attach(encoder, decoder, list(manifest.get("inputs") or ["input_ids", "attention_mask"]))
    else:
        model.attach(decoder)
    return model.eval()
