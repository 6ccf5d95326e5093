"""The regrouped LoRA arithmetic computes what peft's own layers compute, gradients included."""

from __future__ import annotations

import copy

import torch

from tunesmith.engine import fused_lora


def _lora_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)  # A's initialisation too: the same model whatever ran before
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    base.requires_grad_(False)
    config = LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear")
    model = get_peft_model(base, config)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # peft starts B at zero, which would hide A's gradients
    return model


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids).logits
    loss = logits.float().log_softmax(-1)[..., 1].mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return logits.detach(), grads


def test_groups_give_peft_s_outputs_and_gradients(tiny_model_dir):
    plain = _lora_model(tiny_model_dir)
    fused = copy.deepcopy(plain)
    layers = fused.get_base_model().config.num_hidden_layers
    ids = torch.randint(3, 300, (3, 9))
    # q/k/v, o, gate/up and down read four different inputs in each decoder layer
    assert fused_lora.fuse(fused, ids[:1, :4]) == 4 * layers
    expected_logits, expected = _loss_and_grads(plain, ids)
    logits, grads = _loss_and_grads(fused, ids)
    # Regrouped sums round differently: float32 rounding is relative to each tensor's largest
    # values (observed up to 3e-5 of them over seeds), where a wrong grouping is off by O(1).
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=_rounding(expected_logits))
    assert grads.keys() == expected.keys() and len(grads) == 2 * 7 * layers
    for name, grad in grads.items():
        want = expected[name]
        torch.testing.assert_close(grad, want, rtol=1e-4, atol=_rounding(want), msg=name)


def _rounding(reference: torch.Tensor) -> float:
    return 1e-4 * reference.abs().max().item()


def test_grouped_weights_are_views_not_copies(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    attention = model.get_base_model().model.layers[0].self_attn
    before = {n: getattr(attention, n).base_layer.weight.clone() for n in ("q_proj", "v_proj")}
    fused_lora.fuse(model, torch.zeros((1, 4), dtype=torch.long))
    q, v = attention.q_proj.base_layer.weight, attention.v_proj.base_layer.weight
    assert q.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()  # one block
    assert torch.equal(q, before["q_proj"]) and torch.equal(v, before["v_proj"])


def test_compiled_layers_group_the_low_rank_products_to_the_same_outputs_and_gradients(
    tiny_model_dir,
):
    plain = _lora_model(tiny_model_dir)
    grouped = copy.deepcopy(plain)
    linears: list[int] = []

    def backend(graph_module, example_inputs):  # the pass alone, the graph run as traced
        fused_lora.GroupLoRAPass()(graph_module.graph)
        graph_module.recompile()
        nodes = graph_module.graph.nodes
        linears.append(sum(n.target is torch._C._nn.linear for n in nodes))
        return graph_module.forward

    for layer in grouped.get_base_model().model.layers:
        layer.compile(backend=backend, dynamic=True)
    ids = torch.randint(3, 300, (3, 9))
    expected_logits, expected = _loss_and_grads(plain, ids)
    logits, grads = _loss_and_grads(grouped, ids)
    # A layer's 7 frozen products stay apart; of its 14 low-rank ones, q/k/v's six and
    # gate/up's four become two each; o's and down's two stay: 7 + 2 + 2 + 2 + 2.
    assert linears and set(linears) == {15}
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=_rounding(expected_logits))
    assert grads.keys() == expected.keys()
    for name, grad in grads.items():
        want = expected[name]
        torch.testing.assert_close(grad, want, rtol=1e-4, atol=_rounding(want), msg=name)
