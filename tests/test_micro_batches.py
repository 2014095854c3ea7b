"""Length-sorted micro-batches: less padding, and the same gradient as the whole random batch."""

from __future__ import annotations

import copy

import pytest

from tasktool.accel import micro_batches
from tasktool.errors import TaskToolError

TEXTS = [
    "a good film",
    "the worst movie of the year and far too long really",
    "ok then",
    "a long and winding story about a man and his dog and the sea",
    "fine",
    "not bad at all for a sequel",
]


def _mask(lengths, width, left=False):
    import torch

    pos = torch.arange(width)[None, :]
    lengths = torch.tensor(lengths)[:, None]
    return (pos >= width - lengths if left else pos < lengths).long()


def test_split_sorts_rows_by_length_trims_each_part_to_its_longest_row_and_weights_rows():
    import torch

    mask = _mask([3, 9, 2, 7], 9)
    batch = {
        "input_ids": torch.arange(36).view(4, 9) * mask,
        "attention_mask": mask,
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    parts = micro_batches.split(batch, 2, "rows")
    assert [p["attention_mask"].sum(1).tolist() for p, _ in parts] == [[2, 3], [7, 9]]
    assert [p["input_ids"].shape for p, _ in parts] == [(2, 3), (2, 9)]
    assert [p["labels"].tolist() for p, _ in parts] == [[0, 0], [1, 1]]
    assert [w for _, w in parts] == [0.5, 0.5]


def test_token_weights_count_labelled_tokens_and_left_padding_is_trimmed_on_the_left():
    import torch

    mask = _mask([1, 5, 4], 5, left=True)
    labels = torch.where(mask.bool(), torch.ones_like(mask), torch.full_like(mask, -100))
    batch = {"input_ids": mask * 7, "attention_mask": mask, "labels": labels}
    parts = micro_batches.split(batch, 2, "tokens")
    (short, w_short), (long_, w_long) = parts
    assert short["attention_mask"].tolist() == [[0, 0, 0, 1], [1, 1, 1, 1]]  # widths 5 -> 4
    assert long_["attention_mask"].tolist() == [[1, 1, 1, 1, 1]]
    assert (w_short, w_long) == (5 / 10, 5 / 10)
    shifted = micro_batches.split(batch, 2, "shifted_tokens")
    assert [w for _, w in shifted] == [4 / 8, 4 / 8]  # labels[:, 1:] of the trimmed parts: 1 + 3 and 4


def test_batches_that_cannot_be_split_stay_whole():
    import torch

    holes = torch.tensor([[1, 0, 1], [1, 1, 0]])
    assert micro_batches.split({"input_ids": holes, "attention_mask": holes}, 2, "rows") is None
    assert micro_batches.split({"pixel_values": torch.zeros(4, 3, 8, 8)}, 2, "rows") is None
    one = _mask([3], 3)
    assert micro_batches.split({"input_ids": one, "attention_mask": one}, 2, "rows") is None
    mask = _mask([3, 1], 3)
    assert micro_batches.split({"input_ids": mask, "attention_mask": mask}, 1, "rows") is None
    full = _mask([20, 20, 20, 19], 20)  # blocks of text: splitting would shed 1 position in 80
    assert micro_batches.split({"input_ids": full, "attention_mask": full}, 2, "rows") is None


def test_decoder_labels_keep_their_own_width():
    import torch

    mask = _mask([2, 4], 4)
    labels = torch.tensor([[5, 6, 7, 8], [5, -100, -100, -100]])  # the short input has the long target
    parts = micro_batches.split({"input_ids": mask, "attention_mask": mask, "labels": labels}, 2, "tokens")
    assert parts[0][0]["input_ids"].shape == (1, 2)
    assert parts[0][0]["labels"].tolist() == [[5, 6, 7, 8]]  # trimming would have cut real targets
    assert parts[1][0]["labels"].tolist() == [[5, -100, -100, -100]]  # its input fills the width: untouched
    batch = {
        "input_ids": mask,
        "attention_mask": mask,
        "labels": labels[[1, 0]],
        "decoder_input_ids": labels[[1, 0]],
    }
    short = micro_batches.split(batch, 2, "tokens")[0][0]
    assert short["labels"].shape == short["decoder_input_ids"].shape == (1, 4)  # they stay in step


def test_auto_is_two_on_cpu_for_batches_of_16_and_up_and_bad_values_are_one_line_errors():
    assert micro_batches.resolve("auto", 32, "cpu") == 2
    assert micro_batches.resolve(None, 8, "cpu") == 1
    assert micro_batches.resolve("auto", 32, "cuda") == 1
    assert micro_batches.resolve("3", 32, "cuda") == 3
    for bad in ("0", "two", "1.5"):
        with pytest.raises(TaskToolError, match="micro_batches"):
            micro_batches.resolve(bad, 32, "cpu")


def _no_dropout(model):
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("dropout", "attention_dropout", "activation_dropout", "layerdrop"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)
    return model


def _batch(task, tokenizer):
    import torch

    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    n = len(TEXTS)
    if task == "text-classification":
        enc["labels"] = torch.tensor([1, 0, 1, 0, 1, 1])
    elif task == "summarization":  # targets of their own lengths, -100 where padded
        target = tokenizer(list(reversed(TEXTS)), padding=True, return_tensors="pt")
        enc["labels"] = target["input_ids"].masked_fill(target["attention_mask"] == 0, -100)
    else:  # token-level labels on the input's positions (NER; causal LM shifts them inside the model)
        vocab = 5 if task == "token-classification" else 0
        labels = enc["input_ids"] % vocab if vocab else enc["input_ids"].clone()
        enc["labels"] = labels.masked_fill(enc["attention_mask"] == 0, -100)
        if task == "token-classification":
            enc["labels"][torch.arange(n), 0] = -100  # the first (special) token is not labelled
    return dict(enc)


@pytest.mark.parametrize(
    ("task", "auto", "units"),
    [
        ("text-classification", "AutoModelForSequenceClassification", "rows"),
        ("token-classification", "AutoModelForTokenClassification", "tokens"),
        ("text-generation", "AutoModelForCausalLM", "shifted_tokens"),
        ("summarization", "AutoModelForSeq2SeqLM", "tokens"),
    ],
)
def test_micro_batched_step_gives_the_whole_batchs_loss_and_gradient(tiny, tmp_path, task, auto, units):
    import torch
    import transformers

    kwargs = {"labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]} if task == "token-classification" else {}
    path = tiny(task, **kwargs)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model = _no_dropout(getattr(transformers, auto).from_pretrained(path))
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    results = {}
    # the parts one after another, or on three threads at once: the same loss and gradient either way
    for k, concurrent in ((1, False), (3, False), (3, True)):
        trained = copy.deepcopy(model)
        trainer = micro_batches.with_micro_batches(transformers.Trainer, k, units, concurrent)(
            model=trained, args=args
        )
        trainer.current_gradient_accumulation_steps = 1
        batch = _batch(task, tokenizer)
        if k > 1:
            assert len(micro_batches.split(batch, k, units)) == 3
        threads = torch.get_num_threads()
        torch.set_num_threads(3 if concurrent else threads)  # three threads to share out the parts
        try:
            loss = trainer.training_step(trained, batch)
        finally:
            torch.set_num_threads(threads)
        results[k, concurrent] = (
            loss,
            {n: p.grad.clone() for n, p in trained.named_parameters() if p.grad is not None},
        )
    loss1, grads1 = results[1, False]
    for key in ((3, False), (3, True)):
        loss3, grads3 = results[key]
        assert torch.allclose(loss1, loss3, atol=1e-6), key
        assert grads1.keys() == grads3.keys() and grads1
        for name, grad in grads1.items():
            assert torch.allclose(grad, grads3[name], atol=1e-6, rtol=1e-4), (key, name)


def test_concurrent_micro_batches_with_dropout_repeat_for_the_same_seed(tiny, tmp_path):
    """Each part draws its masks from its own generator seeded from the run's: no race between threads."""
    import torch
    import transformers

    from tasktool.accel import fast_dropout

    path = tiny("text-classification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "right"
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    threads = torch.get_num_threads()
    runs = []
    for seed in (0, 0, 1):
        model = transformers.AutoModelForSequenceClassification.from_pretrained(path)
        assert fast_dropout.apply(model)
        trainer = micro_batches.with_micro_batches(transformers.Trainer, 2, "rows", True)(
            model=model, args=args
        )
        trainer.current_gradient_accumulation_steps = 1
        torch.manual_seed(seed)
        seen = set()
        original = fast_dropout._lanes

        def lanes(shape, device=None, original=original, seen=seen):
            seen.add(getattr(fast_dropout._local, "generator", None) is not None)
            return original(shape, device)

        fast_dropout._lanes = lanes
        torch.set_num_threads(2)  # two threads share out the parts
        try:
            loss = trainer.training_step(model, _batch("text-classification", tokenizer))
        finally:
            fast_dropout._lanes = original
            torch.set_num_threads(threads)
        assert seen == {True}  # every mask came from a part's own generator
        runs.append((loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss_a, grads_a), (loss_b, grads_b), (loss_c, _) = runs
    # each part's masks and loss repeat exactly; the threads may add their parts' gradients in either order
    assert torch.equal(loss_a, loss_b)
    assert all(torch.allclose(a, b, atol=1e-7, rtol=1e-5) for a, b in zip(grads_a, grads_b, strict=True))
    assert not torch.equal(loss_a, loss_c)  # dropout did draw: another seed, other masks
    assert torch.get_num_threads() == threads
