"""Random batches at close to the padding cost of length-grouped ones.

Length-grouped batches (`group_by_length`) are fast because they pad little, but each batch then holds
examples of one length, and where the label follows the length (long reviews skew positive) that
changes what is learnt: the held-out loss comes out measurably worse. Here every optimizer step still
sees one random batch; only its forward/backward passes are split into `k` micro-batches sorted by
length, each padded to its own longest row. The gradient is the same weighted mean as the whole
batch's (tested), so training follows the random-batch run. Few parts pay best: every pass has a fixed
cost (embedding gradient, weight casts).

On a multi-core CPU in one process the parts can also run concurrently, on k threads with a share of
the cores each (fewer thread barriers per op, one part's Python overlapping another's matmuls). The
batch is then cut into 4k sorted parts, shared out so every thread gets about as many padded tokens
(the two plain halves differ too much: the long one holds most tokens, and running them side by side
is slower than one after the other).

Every pass would also zero-fill and add a dense gradient of the whole word-embedding table to change
the few hundred rows its tokens use. In one process the parts' embedding gradients are made sparse
instead and added in place to one dense gradient per step (the same tensor each step, zeroed), so the
optimizer, clipping and checkpoints still see a dense gradient of the same value
(`sparse_embedding_grads`); it is what makes finer parts pay (4 per thread).

Where the encoder computes the real tokens only (`packed_encoder`, BERT-style models) there is no
padding to shed: the batch stays whole, or its rows are dealt out to the threads (in a snake over
the length order, so each thread gets about the same tokens). (Figures: benchmarks/README.md.)
"""

from __future__ import annotations

import contextlib

# what a task's loss is a mean over, so the micro-batch losses can be weighted back to the batch's:
# "rows" (one label per row), "tokens" (labels != -100), "shifted_tokens" (causal LM: labels[:, 1:])
UNITS = ("rows", "tokens", "shifted_tokens")
MIN_SAVING = 0.1  # split only where the parts pad at least this share of the batch's positions less
# a micro-batch's share of the batch's loss travels in its inputs to `compute_loss`, which takes it out
WEIGHT = "_tasktool_part_weight"


def resolve(value, batch_size: int, device_type: str) -> int:
    """Recipe value -> number of micro-batches. auto: 2 on CPU for batches of 16+, else 1 (GPUs like big batches)."""
    from tasktool.errors import TaskToolError

    if value in (None, "auto"):
        return 2 if device_type == "cpu" and batch_size >= 16 else 1
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or str(value).strip() != str(k):
        raise TaskToolError(
            f"micro_batches must be 'auto' or a whole number >= 1, got {value!r}", "e.g. micro_batches=2"
        )
    return k


def _units(inputs: dict, units: str):
    labels = inputs.get("labels")
    if units == "rows" or labels is None or labels.dim() < 2:
        return next(v for v in inputs.values() if hasattr(v, "shape") and v.dim() >= 1).shape[0]
    if units == "shifted_tokens":
        labels = labels[:, 1:]
    return int((labels != -100).sum())


def _trimmable(key: str, inputs: dict) -> bool:
    """Columns of the input's width that follow the input's padding (the decoder's do not)."""
    if key == "labels":  # labels beside decoder inputs are the decoder's, whatever their width
        return not any(k.startswith("decoder_") for k in inputs)
    return not key.startswith("decoder_")


def split(inputs: dict, k: int, units: str, interleave: bool = False) -> list[tuple[dict, float]] | None:
    """The batch as up to k length-sorted micro-batches with their loss weights; None: keep it whole.

    interleave: the rows of the length order dealt out to the parts in turn (parts of about the same
    tokens and lengths, each still sorted), for threads whose encoder skips padding itself
    (`packed_encoder`).
    """
    import torch

    mask = inputs.get("attention_mask")
    if k < 2 or units not in UNITS or mask is None or mask.dim() != 2 or mask.shape[0] < 2:
        return None
    n, width = mask.shape
    lengths = mask.sum(dim=1)
    positions = torch.arange(width, device=mask.device)
    right = bool((mask.bool() == (positions[None, :] < lengths[:, None])).all())
    left = bool((mask.bool() == (positions[None, :] >= width - lengths[:, None])).all())
    if not (right or left):  # holes in the mask (packed or custom attention): leave the batch alone
        return None
    order = torch.argsort(lengths, stable=True)
    if interleave:  # dealt in a snake (0 1 1 0 0 1 ...): dealing 0 1 0 1 gives part 0 the shorter row
        # of every pair, and its thread finished early on the benchmark's batches (the snake: evenly)
        m = min(k, n)
        j = torch.arange(n, device=order.device)
        deal = torch.where((j // m) % 2 == 0, j % m, m - 1 - j % m)
        pieces = [order[deal == i] for i in range(m)]
    else:
        pieces = [rows for rows in torch.tensor_split(order, min(k, n)) if len(rows)]
        kept = sum(len(rows) * int(lengths[rows].max()) for rows in pieces)
        if kept > (1 - MIN_SAVING) * n * width:  # little padding to shed: each pass has a fixed cost
            return None
    parts = []
    for rows in pieces:
        keep = int(lengths[rows].max())
        part = {}
        for key, value in inputs.items():
            if torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == n:
                value = value[rows]
                if value.dim() == 2 and value.shape[1] == width and keep < width and _trimmable(key, inputs):
                    cut = value[:, keep:] if right else value[:, : width - keep]
                    if key != "labels" or bool((cut == -100).all()):
                        value = (value[:, :keep] if right else value[:, width - keep :]).contiguous()
            part[key] = value
        parts.append((part, _units(part, units)))
    # counted after trimming: a left-padded causal LM no longer "predicts" a first token from padding
    total = sum(count for _, count in parts)
    if not total:
        return None
    return [(part, count / total) for part, count in parts]


class sparse_embedding_grads:
    """Within this block the input embedding's backward writes only the rows its tokens use, added in
    place to a dense gradient (set here if there is none yet, as the first backward would: `spare` keeps
    that tensor from step to step).

    Autograd adds a sparse gradient into an existing dense one in place, under the parameter's own lock,
    so parts on several threads may do it at once; tied output layers add their dense part as before.
    One process only: DDP decides at wrapping time how it reduces each gradient.
    """

    def __init__(self, model, spare: dict | None = None):
        import torch

        self.spare = spare  # keeps the last step's gradient tensor: zeroing it beats a fresh allocation
        self.embedding = None
        try:
            embedding = model.get_input_embeddings()
        except (AttributeError, NotImplementedError):
            return
        if (
            isinstance(embedding, torch.nn.Embedding)
            and embedding.weight.requires_grad
            and not embedding.sparse
        ):
            self.embedding = embedding

    def __enter__(self):
        import torch

        if self.embedding is not None:
            weight = self.embedding.weight
            if weight.grad is None:
                grad = (self.spare or {}).get("grad")
                if grad is None or grad.shape != weight.shape or grad.dtype != weight.dtype:
                    grad = torch.zeros_like(weight)  # (a new one is page-faulted in, page by page)
                else:
                    grad.zero_()
                if self.spare is not None:
                    self.spare["grad"] = grad
                weight.grad = grad
            self.embedding.sparse = weight.grad.layout == torch.strided
        return self

    def __exit__(self, *exc):
        if self.embedding is not None:
            self.embedding.sparse = False
        return False


def with_micro_batches(
    cls: type, k: int, units: str | None, concurrent: bool = False, packed: bool = False
) -> type:
    """Trainer subclass whose training step runs each batch as k length-sorted micro-batches.

    packed: the model's encoder computes the real tokens only (`packed_encoder`), so a batch has no
    padding to shed: it stays whole, or is dealt out to the k threads when concurrent.

    concurrent: run 4k parts on k threads at once, each thread with its share of torch's threads and
    about the same padded tokens (CPU, one process, tasktool's dropout: each part draws its masks from
    its own generator, seeded from the run's, so the same seed gives the same masks and losses; the
    threads add their parts' gradients in either order, so a rerun matches to float rounding).
    """
    if not units or (k < 2 and not packed):
        return cls
    from tasktool.accel import packed_encoder

    class MicroBatched(cls):
        def training_step(self, model, inputs, num_items_in_batch=None):
            parts = None
            together = concurrent and k > 1 and self.accelerator.num_processes == 1
            if not (getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False)):
                if packed:  # no padding to shed: parts only to deal the rows out to threads
                    parts = split(inputs, k, units, interleave=True) if together else None
                else:  # concurrent: four parts per thread, shared out so each gets as many padded tokens
                    parts = split(inputs, 4 * k if together else k, units)
            if parts is None:
                with packed_encoder.rows_of(inputs.get("attention_mask") if packed else None):
                    return super().training_step(model, inputs, num_items_in_batch)
            if self.accelerator.num_processes == 1:
                spare = self.__dict__.setdefault("_tasktool_spare_grad", {})
                with sparse_embedding_grads(self.accelerator.unwrap_model(model), spare):
                    return self._concurrent_step(model, parts) if together else self._parts_step(model, parts)
            return self._parts_step(model, parts)

        def _parts_step(self, model, parts):
            total = None
            for i, (part, weight) in enumerate(parts):
                last = i == len(parts) - 1
                # DDP: gradients are reduced once, after the last micro-batch
                sync = contextlib.nullcontext() if last else self.accelerator.no_sync(model)
                loss = self._part_step(model, part, weight, sync)
                total = loss if total is None else total + loss
            return total

        def _part_step(self, model, part, weight, context):
            with context, packed_encoder.rows_of(part.get("attention_mask") if packed else None):
                # no num_items_in_batch: each micro-batch's loss is its own mean, weighted in compute_loss
                return super().training_step(model, {**part, WEIGHT: weight}, None)

        def _concurrent_step(self, model, parts):
            from concurrent.futures import ThreadPoolExecutor

            import torch

            from tasktool.accel.fast_dropout import own_generator

            seed = int(torch.randint(0, 2**62, (1,)))  # from the run's generator: reproducible
            # length-sorted parts differ in cost (the long half holds most tokens): longest first,
            # each to the thread with the least padded tokens so far
            cost = [p["attention_mask"].numel() for p, _ in parts]
            threads = torch.get_num_threads()
            queues: list[list[int]] = [[] for _ in range(min(k, threads, len(parts)))]
            load = [0] * len(queues)
            for i in sorted(range(len(parts)), key=lambda i: -cost[i]):
                t = load.index(min(load))
                queues[t].append(i)
                load[t] += cost[i]

            def run(queue):
                losses = []
                for i in queue:
                    part, weight = parts[i]
                    with own_generator(torch.Generator().manual_seed(seed + i)):
                        losses.append(self._part_step(model, part, weight, contextlib.nullcontext()))
                return losses

            torch.set_num_threads(max(1, threads // len(queues)))  # process-wide: restored below
            try:
                with ThreadPoolExecutor(len(queues), thread_name_prefix="tasktool-micro") as pool:
                    losses = [loss for f in [pool.submit(run, q) for q in queues] for loss in f.result()]
            finally:
                torch.set_num_threads(threads)
            return sum(losses[1:], losses[0])

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **kwargs):
            # evaluation during training: the packed encoder skips the padding there too
            with packed_encoder.rows_of(inputs.get("attention_mask") if packed else None):
                return super().prediction_step(
                    model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **kwargs
                )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weight = inputs.get(WEIGHT)
            if weight is not None:
                inputs = {key: value for key, value in inputs.items() if key != WEIGHT}
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
            if weight is None:
                return result
            if return_outputs:
                return result[0] * weight, result[1]
            return result * weight

    MicroBatched.__name__ = MicroBatched.__qualname__ = f"MicroBatched{cls.__name__}"
    return MicroBatched
