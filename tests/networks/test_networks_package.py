"""The networks and data packages: one shared conditioning module, checkpoint keys unchanged by the
move, the digits GPT-2 built by the networks' builder, and the deprecated ``analytic`` path."""

import warnings

import pytest
import torch

from unified_guidance.autoregressive import digits_token_lm
from unified_guidance.autoregressive.tokens import DigitTokens
from unified_guidance.data import GaussianMixture, two_d_mixture
from unified_guidance.networks import MLPNet, TinyDiT, TinyUNet
from unified_guidance.networks.embedding import ConditioningEmbedding
from unified_guidance.networks.gpt2 import tiny_gpt2

NETS = [lambda: TinyUNet(width=16), lambda: MLPNet(width=16), lambda: TinyDiT(width=16, depth=1)]


@pytest.mark.parametrize("make", NETS, ids=["unet", "mlp", "dit"])
def test_every_network_is_conditioned_through_the_one_embedding_with_unchanged_checkpoint_keys(make):
    net = make()
    assert isinstance(net.embed, ConditioningEmbedding)
    keys = {k for k in net.state_dict() if k.startswith("embed.")}
    assert keys == {"embed.labels.weight", "embed.time.0.weight", "embed.time.0.bias", "embed.time.2.weight",
                    "embed.time.2.bias"}  # fmt: skip


def test_the_embedding_refuses_labels_outside_the_classes_and_null():
    embed = ConditioningEmbedding(num_classes=3, width=8)
    x = torch.zeros(2, 2)
    assert embed(x, torch.tensor(0.5), torch.tensor([0, 3])).shape == (2, 8)  # 3 = ∅
    with pytest.raises(ValueError, match=r"labels: expected class indices in \[0, 3\]"):
        embed(x, torch.tensor(0.5), torch.tensor([0, 4]))


def test_digits_token_lm_is_the_networks_gpt2_with_the_digits_layout():
    layout = DigitTokens()
    lm = digits_token_lm(width=32, layers=1, heads=2, seed=0)
    same = tiny_gpt2(layout.vocab_size, layout.pixels + 1, layout.null_token, 32, 1, 2, seed=0)
    assert lm.config.vocab_size == 28 and lm.config.n_positions == 65 and lm.config.bos_token_id == 27
    assert lm.generation_config.eos_token_id is None
    for (name, p), (other, q) in zip(lm.state_dict().items(), same.state_dict().items(), strict=True):
        assert name == other and torch.equal(p, q)


def test_the_old_analytic_path_warns_and_gives_the_same_objects():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from unified_guidance.analytic import GaussianMixture as Old
        from unified_guidance.analytic import two_d_mixture as old
    assert Old is GaussianMixture and old is two_d_mixture
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "unified_guidance.data" in str(caught[0].message) and caught[0].filename == __file__
