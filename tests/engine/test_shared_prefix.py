"""A short batch runs packed: its real tokens only, the rows' shared start once, attention row
by row. Same loss, same gradients as the rows apart."""

from __future__ import annotations

import pytest
import torch

from tunesmith.engine import models, recipe
from tunesmith.engine.batching import IGNORE, collate, plan_batches
from tunesmith.engine.prompting import PromptFormat

TEMPLATE = "Question, answered with the next number: {input}\nAnswer: "
PAIRS = [("1", "2"), ("twenty two", "twenty three"), ("8", "9"), ("one two", "three")]


@pytest.fixture(params=[False, True], ids=["float32", "bf16"])
def lora_model(tiny_model_dir, request):
    """The tiny base under a fresh adapter, with eager attention (what short runs use), its
    frozen weights in float32 or in bf16 (as where bf16 is fast)."""
    models.clear_cache()
    r = recipe.Recipe(base_dir=tiny_model_dir, examples=PAIRS, output_dir=tiny_model_dir / "x")
    model = models.prepare(r, bf16=request.param, longest=32)
    model.bf16 = request.param
    for name, p in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; the gradients of A would be zero too
            torch.nn.init.normal_(p, std=0.5)
    yield model
    models.release(model)


def _batch(tiny_model_dir, pairs, template=TEMPLATE):
    tok = recipe.load_tokenizer(tiny_model_dir)
    fmt = PromptFormat(template, tok)
    return collate([recipe.encode(tok, fmt, i, o, 64) for i, o in pairs], tok.pad_token_id)


def _loss_and_grads(model, loss_fn):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


@pytest.mark.parametrize(
    "template", [TEMPLATE, "{input} = "], ids=["shared start", "no shared start"]
)
def test_packed_batch_gives_the_models_own_loss_and_gradients(
    tiny_model_dir, lora_model, template, monkeypatch
):
    bf16 = lora_model.bf16
    ids, labels, mask = _batch(tiny_model_dir, PAIRS, template)
    assert models.packs(lora_model)
    start = models.shared_start(ids, mask, labels)
    assert bool(start) == (template == TEMPLATE)
    real = int(mask.sum()) - start * (len(PAIRS) - 1)  # no padding, the start counted once
    rounded = real + -real % models.PACK_MULTIPLE  # and no more than rounding adds
    assert models.pack_batch(ids, mask, labels).ids.shape[1] == rounded
    # a tail of 7 masked tokens rounds the length up, and the vocabulary head's rows (fewer
    # than that: one per target) up to as many; neither may change the loss or the gradients
    monkeypatch.setattr(models, "PACK_MULTIPLE", real + 7)
    assert models.pack_batch(ids, mask, labels).ids.shape[1] == real + 7
    head_rows = []
    head = models._core(lora_model).get_output_embeddings()
    hook = head.register_forward_hook(lambda _m, args, _out: head_rows.append(args[0].shape[0]))

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        ours, our_grads = _loss_and_grads(
            lora_model, lambda: models.target_loss(lora_model, ids, mask, labels)
        )
        theirs, their_grads = _loss_and_grads(
            lora_model,
            lambda: lora_model(input_ids=ids, attention_mask=mask, labels=labels).loss,
        )
    hook.remove()
    targets = int((labels[:, 1:] != IGNORE).sum())
    assert head_rows[0] == real + 7 > targets
    tol = 2e-2 if bf16 else 1e-5
    assert ours == pytest.approx(theirs, rel=tol)
    assert our_grads.keys() == their_grads.keys() and len(our_grads) > 0
    for name, g in their_grads.items():
        assert torch.allclose(our_grads[name], g, rtol=tol * 5, atol=tol * g.abs().max()), name


def test_long_examples_run_padded_with_the_models_own_attention(tiny_model_dir):
    models.clear_cache()
    r = recipe.Recipe(base_dir=tiny_model_dir, examples=PAIRS, output_dir=tiny_model_dir / "x")
    model = models.prepare(r, bf16=False, longest=models.EAGER_ATTENTION_MAX_LEN + 1)
    try:
        assert not models.packs(model)
        ids, labels, mask = _batch(tiny_model_dir, PAIRS)
        theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        assert models.target_loss(model, ids, mask, labels).item() == pytest.approx(theirs.item())
    finally:
        models.release(model)


def test_the_shared_start_ends_before_the_first_target_is_predicted():
    # Rows alike for 10 tokens (say, two conversations up to their second user turn); the
    # first row learns its tokens 6-7 (its first answer), so position 5, which predicts
    # token 6, must run in the rows' own pass: tokens 0-4 are shared.
    ids = torch.tensor([[5] * 10 + [1, 2], [5] * 10 + [3, 0]])
    mask = torch.tensor([[1] * 12, [1] * 11 + [0]])
    labels = torch.full_like(ids, IGNORE)
    labels[0, 6:8] = ids[0, 6:8]
    labels[1, 10] = ids[1, 10]
    assert models.shared_start(ids, mask, labels) == 5
    # Learned only once the rows differ (token 10 of the second): the alike tokens but the
    # last, whose position predicts that target.
    labels[0, 6:8] = IGNORE
    assert models.shared_start(ids, mask, labels) == 9
    # A row that is all start (no target: say, every answer weighted out) keeps its last
    # token, so every row has a position in the packed sequence.
    short = torch.tensor([[5] * 10 + [1, 2], [5] * 6 + [0] * 6])
    short_mask = (short != 0).long()
    assert models.shared_start(short, short_mask, labels) == 5
    mask[1, 3] = 0  # a masked token is not shared
    assert models.shared_start(ids, mask, labels) == 3
    assert models.shared_start(ids[:1], mask[:1], labels[:1]) == 0  # a single row


def test_runs_whose_batches_pack_keep_them_mixed(tiny_model_dir):
    """Length grouping saves padding; packed batches have none, and batches of like lengths are
    batches of like examples (here: digits or words). A run whose batches pack (short
    examples) keeps each epoch's seeded order; one whose batches pad groups them by length."""
    pairs = [(str(i), str(i + 1)) for i in range(10)] + [("twenty two", "twenty three")] * 6
    tok = recipe.load_tokenizer(tiny_model_dir)
    r = recipe.Recipe(
        base_dir=tiny_model_dir, examples=pairs, output_dir=tiny_model_dir / "x", batch_size=4,
        epoch_count=2, seed=3,
    )  # fmt: skip
    args = (len(pairs), r.epoch_count, r.batch_size, r.seed)

    def plan(template, longest=32):
        fmt = PromptFormat(template, tok)
        rows = [recipe.encode(tok, fmt, i, o, 64) for i, o in pairs]
        lengths = [len(ids) for ids, _ in rows]
        model = models.prepare(r, bf16=False, longest=longest)
        try:
            chosen = recipe._plan(r, lengths, model)
        finally:
            models.release(model)
        return chosen, plan_batches(*args, lengths)

    mixed = plan_batches(*args)
    chosen, grouped = plan(TEMPLATE)
    assert grouped != mixed  # the two orders differ on these examples
    assert chosen == mixed
    chosen, _ = plan("{input} = ")  # no shared start: packed all the same
    assert chosen == mixed
    chosen, grouped = plan(TEMPLATE, longest=models.EAGER_ATTENTION_MAX_LEN + 1)
    assert chosen == grouped


@pytest.mark.parametrize("kv_heads", [2, 4], ids=["grouped queries", "a key-value head each"])
def test_packed_attention_is_the_models_own(tiny_model_dir, tmp_path, kv_heads):
    """Gemma 2 soft-caps its attention scores in its own eager attention: packed batches keep
    that (the loss equals the model's own under plain eager attention), whether two query
    heads share each key-value head (attended as one, their keys not repeated) or not."""
    from transformers import AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM

    tok = recipe.load_tokenizer(tiny_model_dir)
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=kv_heads, head_dim=8, query_pre_attn_scalar=8,
        attn_logit_softcapping=0.5, final_logit_softcapping=5.0, sliding_window=64,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
        initializer_range=0.2,
    )  # fmt: skip
    folder = tmp_path / "gemma2"
    Gemma2ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    ids, labels, mask = _batch(folder, PAIRS)
    reference = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    theirs = reference(input_ids=ids, attention_mask=mask, labels=labels).loss.item()

    models.clear_cache()
    r = recipe.Recipe(base_dir=folder, examples=PAIRS, output_dir=tmp_path / "x")
    model = models.prepare(r, bf16=False, longest=32)  # a fresh adapter changes nothing yet
    try:
        assert models.packs(model)
        assert models.target_loss(model, ids, mask, labels).item() == pytest.approx(
            theirs, rel=1e-5
        )
    finally:
        models.release(model)
    models.clear_cache()
