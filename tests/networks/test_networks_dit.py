"""TinyDiT: shapes, adaLN-Zero at construction, per-sample independence, dtypes, bad input, and
the contract the perturbation hooks rely on (one interceptable attention call per block)."""

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from unified_guidance import Guidance
from unified_guidance.diffusion import EpsModel
from unified_guidance.diffusion import sample as diffusion_sample
from unified_guidance.flow import VelocityModel
from unified_guidance.flow import sample as flow_sample
from unified_guidance.networks import TinyDiT
from unified_guidance.networks.dit import DiTAttention, DiTBlock, sincos_position_2d

F = nn.functional


def randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """``net`` with every parameter redrawn (the zero-initialised gates and output too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


def inputs(batch=3, shape=(1, 8, 8), dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *shape, generator=gen, dtype=dtype)
    return x, torch.rand(batch, generator=gen, dtype=dtype), torch.arange(batch) % 10


def test_output_shape_and_grid_for_digits_and_a_rectangular_colour_image():
    torch.manual_seed(0)
    net = randomised(TinyDiT(width=16, depth=2, heads=2))
    assert net(*inputs()).shape == (3, 1, 8, 8) and net.grid == (4, 4)
    wide = randomised(TinyDiT(in_channels=3, image_size=(8, 12), width=16, depth=1, heads=2, patch_size=4))
    x, t, y = inputs(2, (3, 8, 12))
    assert wide(x, t, y).shape == (2, 3, 8, 12)
    assert wide.grid == (2, 3) and all(block.attn.grid == (2, 3) for block in wide.blocks)


def test_unpatchify_inverts_the_patch_order():
    net = TinyDiT(in_channels=2, image_size=(4, 6), width=8, depth=1, heads=2, patch_size=2)
    x = torch.arange(2 * 2 * 4 * 6, dtype=torch.float32).reshape(2, 2, 4, 6)
    # tokens in row-major order over the grid, features ordered (p_row, p_col, C)
    tokens = x.reshape(2, 2, 2, 2, 3, 2).permute(0, 2, 4, 3, 5, 1).reshape(2, 6, 8)
    assert torch.equal(net.unpatchify(tokens), x)


def test_adaln_zero_output_is_zero_and_every_block_is_the_identity_at_construction():
    torch.manual_seed(0)
    net = TinyDiT(width=16, depth=3, heads=2)
    x, t, y = inputs()
    assert torch.equal(net(x, t, y), torch.zeros_like(x))
    h, emb = torch.randn(3, 16, 16), torch.randn(3, 16)
    assert all(torch.equal(block(h, emb), h) for block in net.blocks)


def test_changing_one_label_changes_only_that_samples_output(float64):
    torch.manual_seed(0)
    net = randomised(TinyDiT(width=16, depth=2, heads=2))
    x, t, y = inputs(4, dtype=torch.float64)
    before = net(x, t, y)
    y2 = y.clone()
    y2[2] = 10  # ∅ (the null label) is accepted
    after = net(x, t, y2)
    assert not torch.allclose(after[2], before[2])
    assert torch.equal(torch.cat([after[:2], after[3:]]), torch.cat([before[:2], before[3:]]))
    alone = net(x[2:3], t[2:3], y2[2:3])  # a batch of one: no mixing across the batch
    torch.testing.assert_close(alone, after[2:3], rtol=0, atol=1e-12)


def test_float64_network_matches_float32():
    torch.manual_seed(0)
    net = randomised(TinyDiT(width=16, depth=2, heads=2))
    x, t, y = inputs()
    out32 = net(x, t, y)
    out64 = net.double()(x.double(), t.double(), y)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-4)


class CountAndReplaceAttention(TorchFunctionMode):
    """Counts scaled_dot_product_attention calls; with ``identity`` returns v (attention map = I)."""

    def __init__(self, identity: bool = False) -> None:
        super().__init__()
        self.calls, self.identity = [], identity

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            self.calls.append(tuple(args[0].shape))
            if self.identity:
                return args[2]
        return func(*args, **(kwargs or {}))


def test_each_attn_calls_sdpa_once_on_heads_layout_and_a_mode_can_replace_it():
    torch.manual_seed(0)
    net = randomised(TinyDiT(width=16, depth=3, heads=2))
    x, t, y = inputs()
    with CountAndReplaceAttention() as mode:
        net(x, t, y)
    assert mode.calls == [(3, 2, 16, 8)] * 3  # (B, heads, L, d), once per block
    # Identity attention (PAG's perturbation): out = proj(v), by hand.
    attn = net.blocks[0].attn
    h = torch.randn(3, 16, 16)
    v = attn.qkv(h)[..., 32:]
    with CountAndReplaceAttention(identity=True):
        torch.testing.assert_close(attn(h), attn.proj(v))


def test_a_skipped_block_hook_returns_its_input():
    torch.manual_seed(0)
    net = randomised(TinyDiT(width=16, depth=2, heads=2))
    x, t, y = inputs()
    handles = [b.register_forward_hook(lambda mod, args, out: args[0]) for b in net.blocks]
    skipped = net(x, t, y)
    for handle in handles:
        handle.remove()
    emb = net.embed(x, t, y)
    h = net.patch(x).flatten(2).transpose(1, 2) + net.position
    shift, scale = net.final_ada(emb)[:, None].chunk(2, dim=-1)
    torch.testing.assert_close(skipped, net.unpatchify(net.out(net.norm(h) * (1 + scale) + shift)))


def test_position_features_encode_row_then_column():
    pos = sincos_position_2d(3, 5, 8).reshape(3, 5, 8)
    assert torch.equal(pos[0, :, :4], pos[0, :1, :4].expand(5, 4))  # row half constant along a row
    assert torch.equal(pos[:, 0, 4:], pos[:1, 0, 4:].expand(3, 4))  # column half constant down a column
    assert torch.equal(pos[0, 0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1], dtype=torch.float64))
    assert torch.unique(pos.reshape(15, 8), dim=0).shape[0] == 15


def test_drops_into_the_diffusion_and_flow_adapters_with_counted_rows():
    torch.manual_seed(0)
    net = randomised(TinyDiT(width=16, depth=1, heads=2)).eval()
    eps = EpsModel(net, null_cond=10, num_classes=10, sample_shape=(1, 8, 8))
    x, _ = diffusion_sample(eps, Guidance(scale=3.0), (2, 1, 8, 8), torch.tensor([1, 10]), steps=3)
    assert x.shape == (2, 1, 8, 8) and eps.stats.rows == 2 * 2 * 3
    flow = VelocityModel(net, null_cond=10)
    x, _ = flow_sample(
        flow, Guidance(scale=3.0), torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), method="euler", steps=3
    )
    assert x.shape == (2, 1, 8, 8) and flow.stats.rows == 2 * 2 * 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TinyDiT(image_size=9), r"image_size: expected H and W divisible by patch_size 2, got 9"),
        (lambda: TinyDiT(image_size=(8, 6), patch_size=4), r"image_size: expected H and W divisible by patch_size 4"),
        (lambda: TinyDiT(width=18, heads=4), r"width: expected a multiple of heads \(4\) and of 4, got 18"),
    ],
)
def test_bad_construction_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("x", "labels", "message"),
    [
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), r"x: expected shape \(B, 1, 8, 8\), got \(2, 1, 4, 4\)"),
        (torch.zeros(2, 64), torch.tensor([0, 1]), r"x: expected shape \(B, 1, 8, 8\), got \(2, 64\)"),
        (torch.zeros(2, 1, 8, 8), torch.tensor([0.0, 1.0]), r"labels: expected a long tensor of shape \(2,\)"),
        (torch.zeros(2, 1, 8, 8), torch.tensor([0, 11]), r"labels: expected class indices in \[0, 10\]"),
    ],
)
def test_bad_input_names_the_argument(x, labels, message):
    with pytest.raises(ValueError, match=message):
        TinyDiT(width=16, depth=1, heads=2)(x, torch.tensor(0.5), labels)


def test_module_paths_for_layer_selection():
    names = dict(TinyDiT(width=16, depth=2, heads=2).named_modules())
    assert isinstance(names["blocks.1"], DiTBlock) and isinstance(names["blocks.1.attn"], DiTAttention)


def test_the_perturbation_hooks_act_on_tinydit_as_the_hand_written_versions(float64):
    from unified_guidance.perturb import Rows, pag, perturbed, seg, slg

    torch.manual_seed(0)
    net = randomised(TinyDiT(in_channels=1, image_size=(4, 6), width=16, depth=2, heads=2))  # grid (2, 3)
    x, t, y = inputs(2, (1, 4, 6), dtype=torch.float64)
    rows = Rows.all(2)
    with CountAndReplaceAttention(identity=True):
        identity = net(x, t, y)
    with perturbed(net, [(pag("blocks.*.attn"), rows)]):
        torch.testing.assert_close(net(x, t, y), identity, rtol=0, atol=1e-12)
    handles = [b.register_forward_hook(lambda mod, args, out: args[0]) for b in net.blocks]
    skipped = net(x, t, y)
    for handle in handles:
        handle.remove()
    with perturbed(net, [(slg("blocks.0", "blocks.1"), rows)]):
        torch.testing.assert_close(net(x, t, y), skipped, rtol=0, atol=0)
    # SEG reads the token grid from the attn module's `grid` (6 tokens are no square).
    with perturbed(net, [(seg("blocks.0.attn", sigma=1.0), rows)]):
        from_attribute = net(x, t, y)
    with perturbed(net, [(seg("blocks.0.attn", sigma=1.0, grid=(2, 3)), rows)]):
        torch.testing.assert_close(net(x, t, y), from_attribute, rtol=0, atol=0)
    assert not torch.allclose(from_attribute, net(x, t, y))
