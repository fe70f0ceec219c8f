"""Which modules a perturbation may act on, decided by what the network does.

A container that is never called, or a module the forward does not run, is refused with the
candidates listed. Self- and cross-attention are told apart by where the attention's keys and
values come from on the module's first call, for plain torch modules and diffusers' ``Attention``
alike, not by the module's class: identity attention on cross-attention would hand each query a
context token's value.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from tests.perturb.attention_nets import QKV, Holder, TokenNet
from unified_guidance.perturb import Rows, pag, perturbed, seg, slg


def _token_net() -> tuple[TokenNet, tuple]:
    torch.manual_seed(0)
    net = TokenNet(depth=2).double()
    x = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    return net, (x, torch.tensor(500.0, dtype=torch.float64), torch.arange(3))


def _xc(tokens: int = 6, width: int = 8) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    return tuple(torch.randn(2, tokens, width, generator=g, dtype=torch.float64) for _ in range(2))


def test_a_module_list_that_is_never_called_is_refused_with_the_blocks_inside():
    net, _ = _token_net()
    for pert in (slg("blocks"), pag("blocks")):
        with pytest.raises(
            ValueError, match=r"'blocks' \(ModuleList\), a container that is never called.*blocks\.0, blocks\.1"
        ):
            pert.select(net)


def test_a_selected_module_the_forward_never_runs_is_refused_after_the_forward():
    net, (x, t, y) = _token_net()
    net.spare = nn.Sequential(nn.Linear(16, 16))  # held, never called
    with pytest.raises(ValueError, match=r"SkipBlocks selects 'spare', which did not run in the forward of TokenNet"):
        with perturbed(net, [(slg("spare"), Rows.all(3))]):
            net(x, t, y)
    net.spare_attn = QKV(16)
    with pytest.raises(ValueError, match=r"'spare_attn', which did not run.*candidates: blocks\.0\.attn"):
        with perturbed(net, [(pag("spare_attn"), Rows.all(3))]):
            net(x, t, y)
    for module in net.modules():  # and nothing is left installed
        assert not module._forward_pre_hooks and not module._forward_hooks


@pytest.mark.parametrize("pert", [pag("attn"), seg("attn")], ids=["pag", "seg"])
def test_plain_torch_cross_attention_is_refused_whatever_the_context_length(pert):
    holder = Holder(QKV()).double()
    x, context = _xc()
    for ctx in (context, torch.cat([context, context], dim=1)):  # as many tokens as x, or more
        holder.attn.__init__()  # a fresh module: judged again on its first call
        holder.double()
        with pytest.raises(ValueError, match=r"'attn' is cross-attention; .* \(its keys and values come from context"):
            with perturbed(holder, [(pert, Rows.all(2))]):
                holder(x, ctx)


def test_the_same_module_used_as_self_attention_gets_the_identity_map():
    holder = Holder(QKV()).double()
    x, _ = _xc()
    with perturbed(holder, [(pag("attn"), Rows.all(2))]):
        out = holder(x)
    torch.testing.assert_close(out, holder.attn.v(x), rtol=0, atol=1e-13)


def test_joint_attention_over_both_streams_is_self_attention():
    holder = Holder(QKV(joint=True)).double()
    x, context = _xc()
    with perturbed(holder, [(pag("attn"), Rows.all(2))]):
        out = holder(x, context)
    torch.testing.assert_close(out, holder.attn.v(torch.cat([x, context], dim=1)), rtol=0, atol=1e-13)


def test_torch_multihead_attention_as_cross_attention_never_gets_the_identity_map():
    holder = Holder(nn.MultiheadAttention(8, 2, batch_first=True)).double()
    x, context = _xc()
    with pytest.raises(ValueError, match=r"modules: 'attn' ran without calling torch\.nn\.functional\.scaled_dot"):
        with perturbed(holder, [(pag("attn"), Rows.all(2))]):
            holder(x, context)


def test_diffusers_attention_is_judged_by_its_call_not_its_configuration():
    x, context = _xc(width=8)
    # configured for cross-attention (cross_attention_dim), called without a context: self-attention
    configured = Holder(Attention(query_dim=8, cross_attention_dim=8, heads=2, dim_head=4)).double()
    with perturbed(configured, [(pag("attn"), Rows.all(2))]):
        out = configured(x)
    attn = configured.attn
    torch.testing.assert_close(out, attn.to_out[0](attn.to_v(x)), rtol=0, atol=1e-13)
    # configured for self-attention, called with a context: cross-attention
    called = Holder(Attention(query_dim=8, heads=2, dim_head=4)).double()
    with pytest.raises(ValueError, match=r"'attn' is cross-attention.*encoder_hidden_states"):
        with perturbed(called, [(pag("attn"), Rows.all(2))]):
            called(x, context)
