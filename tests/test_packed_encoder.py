"""The encoder over real tokens only gives the padded model's loss and every gradient."""

from __future__ import annotations

import copy

import pytest

from tasktool.accel import first_token, micro_batches, packed_encoder

TEXTS = [
    "ok",
    "a good film",
    "fine then, I suppose it was",
    "the worst movie of the year and far too long really, with nothing in it",
    "John went to Paris on Monday",
    "yes",
]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _model(tiny, task: str, first: bool):
    import transformers

    kwargs = {"labels": NER_LABELS} if task == "token-classification" else {}
    cls = (
        transformers.AutoModelForTokenClassification
        if task == "token-classification"
        else transformers.AutoModelForSequenceClassification
    )
    model = cls.from_pretrained(
        tiny(task, **kwargs), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    if first:
        assert first_token.apply(model, training=True)
    return model.train()


def _batch(tiny, task: str, side: str = "right", order=None):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny(task))
    tokenizer.padding_side = side
    texts = [TEXTS[i] for i in order] if order else TEXTS
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    if task == "token-classification":
        labels = (batch["input_ids"] % len(NER_LABELS)).masked_fill(batch["attention_mask"] == 0, -100)
        batch["labels"] = labels
    else:
        batch["labels"] = torch.tensor([1, 0, 1, 0, 1, 1])
    return batch


def _loss_and_grads(model, batch, mask=None):
    with packed_encoder.rows_of(mask):
        loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(a, b):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert torch_allclose(loss_a, loss_b, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        assert torch_allclose(grad, grads_b[name], atol=1e-6, rtol=1e-4), name


def torch_allclose(a, b, **kw) -> bool:
    import torch

    return torch.allclose(a, b, **kw)


@pytest.fixture
def plans(monkeypatch):
    """Mask shapes of the packed forwards taken (none: the model's own forward ran)."""
    shapes = []
    original = packed_encoder._Plan.__init__

    def spy(self, mask):
        shapes.append(tuple(mask.shape))
        original(self, mask)

    monkeypatch.setattr(packed_encoder._Plan, "__init__", spy)
    return shapes


@pytest.mark.parametrize(
    ("task", "first", "side"),
    [
        ("text-classification", True, "right"),  # the first-token last layer, packed too
        ("text-classification", False, "right"),
        ("token-classification", False, "right"),
        ("token-classification", False, "left"),  # any contiguous rows of real tokens
    ],
)
def test_packed_encoder_gives_the_padded_models_loss_and_gradients(tiny, plans, task, first, side):
    model = _model(tiny, task, first)
    packed = copy.deepcopy(model)
    assert packed_encoder.apply(packed)
    assert packed.state_dict().keys() == model.state_dict().keys()  # weights and names untouched
    # unsorted rows too: groups of rows pad more, the values stay the same
    for order in (sorted(range(len(TEXTS)), key=lambda i: len(TEXTS[i])), None):
        batch = _batch(tiny, task, side, order)
        model.zero_grad(set_to_none=True)
        packed.zero_grad(set_to_none=True)
        plans.clear()
        got = _loss_and_grads(packed, batch, batch["attention_mask"])
        assert plans == [tuple(batch["attention_mask"].shape)]  # it did take the packed path
        _assert_same(_loss_and_grads(model, batch), got)


def test_packed_encoder_keeps_the_models_own_forward_where_it_cannot_pack(tiny, plans):
    import torch

    model = _model(tiny, "text-classification", first=True)
    packed = copy.deepcopy(model)
    assert packed_encoder.apply(packed)
    left = _batch(tiny, "text-classification", "left")  # position 0 is padding: the first token is not real
    _assert_same(_loss_and_grads(model, left), _loss_and_grads(packed, left, left["attention_mask"]))
    packed.eval()
    with torch.inference_mode(), packed_encoder.rows_of(left["attention_mask"]):
        assert torch.allclose(packed(**left).logits, model.eval()(**left).logits, atol=1e-6)
    assert plans == []  # the model's own forward ran both times
    packed_encoder.remove(packed)
    assert "forward" not in vars(packed.base_model.encoder)


def test_packed_encoder_is_only_for_bert_style_encoders(tiny):
    import transformers

    gpt2 = transformers.AutoModelForCausalLM.from_pretrained(tiny("text-generation"))
    assert not packed_encoder.apply(gpt2)
    assert "forward" not in vars(gpt2.base_model)
    # rotary positions inside attention and a pre-LayerNorm block: ESM's layers look like BERT's by name
    esm = transformers.EsmForTokenClassification(
        transformers.EsmConfig(
            vocab_size=33,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            position_embedding_type="rotary",
            pad_token_id=1,
            mask_token_id=32,
        )
    )
    assert not packed_encoder.apply(esm)
    assert "forward" not in vars(esm.base_model.encoder)


@pytest.mark.parametrize("concurrent", [False, True])
def test_trainer_step_with_the_packed_encoder_gives_the_whole_batchs_gradient(
    tiny, tmp_path, plans, concurrent
):
    import torch
    import transformers

    model = _model(tiny, "token-classification", first=False)
    args = transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    batch = _batch(tiny, "token-classification")
    want = _loss_and_grads(copy.deepcopy(model), batch)
    trained = copy.deepcopy(model)
    assert packed_encoder.apply(trained)
    trainer = micro_batches.with_micro_batches(transformers.Trainer, 2, "tokens", concurrent, packed=True)(
        model=trained, args=args
    )
    trainer.current_gradient_accumulation_steps = 1
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if concurrent else threads)
    try:
        loss = trainer.training_step(trained, dict(batch))
    finally:
        torch.set_num_threads(threads)
    # concurrent: the rows dealt out to two threads (a snake over the length order); else whole
    assert sorted(p[0] for p in plans) == ([3, 3] if concurrent else [len(TEXTS)])
    grads = {n: p.grad.clone() for n, p in trained.named_parameters() if p.grad is not None}
    _assert_same(want, (loss.detach(), grads))
    embedding = trained.get_input_embeddings()
    assert not embedding.sparse and embedding.weight.grad.layout == torch.strided


@pytest.mark.parametrize(("task", "first"), [("text-classification", True), ("token-classification", False)])
def test_packed_encoder_in_evaluation_gives_the_padded_models_logits(tiny, task, first):
    import torch

    model = _model(tiny, task, first).eval()
    packed = copy.deepcopy(model)
    assert packed_encoder.apply(packed)
    batch = _batch(tiny, task)
    mask = batch["attention_mask"].bool()
    with torch.inference_mode():
        want = model(**batch)
        with packed_encoder.rows_of(batch["attention_mask"]):
            got = packed(**batch)
    assert torch.allclose(got.loss, want.loss, atol=1e-6)
    if task == "token-classification":  # padded positions: values nothing reads
        assert torch.allclose(got.logits[mask], want.logits[mask], atol=1e-5)
    else:
        assert torch.allclose(got.logits, want.logits, atol=1e-5)


@pytest.mark.parametrize("head", ["DistilBertForSequenceClassification", "DistilBertForTokenClassification"])
def test_packed_distilbert_gives_the_padded_models_loss_and_gradients(tiny, plans, head):
    """DistilBERT (the text-classification recipe's Hub default) has blocks of its own: packed too."""
    import torch
    import transformers

    task = "token-classification" if "Token" in head else "text-classification"
    vocab = transformers.AutoTokenizer.from_pretrained(tiny(task)).vocab_size
    config = transformers.DistilBertConfig(
        vocab_size=vocab,
        dim=32,
        n_heads=4,
        n_layers=2,
        hidden_dim=64,
        dropout=0.0,
        attention_dropout=0.0,
        num_labels=len(NER_LABELS) if "Token" in head else 2,
        seq_classif_dropout=0.0,
    )
    torch.manual_seed(0)
    model = getattr(transformers, head)(config).train()
    packed = copy.deepcopy(model)
    assert packed_encoder.apply(packed)
    batch = _batch(tiny, task)
    got = _loss_and_grads(packed, batch, batch["attention_mask"])
    assert plans == [tuple(batch["attention_mask"].shape)]  # it did take the packed path
    _assert_same(_loss_and_grads(model, batch), got)
    packed_encoder.remove(packed)
    assert "forward" not in vars(packed.base_model.transformer)
