"""Next-token training with condition dropout, the token layout, and the demo's sample contract."""

import torch

from unified_guidance.autoregressive.loss import dropped_class_tokens, next_token_loss
from unified_guidance.autoregressive.tokens import DigitTokens, digits_token_lm
from unified_guidance.data import load_digits_split
from unified_guidance.training.autoregressive import TokenARModule

LAYOUT = DigitTokens()


def digits(n: int = 64):
    split = load_digits_split()
    return split.train_images[:n], split.train_labels[:n]


def test_pixel_tokens_round_trip_the_17_grey_levels():
    images, _ = digits(16)
    tokens = LAYOUT.image_tokens(images)
    assert tokens.shape == (16, 64) and int(tokens.min()) >= 0 and int(tokens.max()) <= 16
    torch.testing.assert_close(LAYOUT.images(tokens), images)  # the digits are exactly 17 levels
    assert LAYOUT.class_tokens(torch.tensor([0, 9])).tolist() == [17, 26] and LAYOUT.null_token == 27


def test_loss_is_transformers_own_shifted_cross_entropy():
    lm = digits_token_lm(width=32, layers=1, heads=2, seed=0)
    images, labels = digits(8)
    cond, tokens = LAYOUT.class_tokens(labels), LAYOUT.image_tokens(images)
    seq = torch.cat([cond[:, None], tokens], dim=1)
    targets = seq.clone()
    targets[:, 0] = -100  # the condition is given, not predicted
    expected = lm(input_ids=seq, labels=targets).loss
    torch.testing.assert_close(next_token_loss(lm, cond, tokens), expected)


def test_condition_dropout_replaces_class_tokens_by_the_null_token():
    labels = torch.arange(10).repeat(400)
    cond = dropped_class_tokens(labels, LAYOUT, 0.1, generator=torch.Generator().manual_seed(0))
    dropped = cond == LAYOUT.null_token
    assert torch.equal(cond[~dropped], LAYOUT.class_tokens(labels)[~dropped])
    assert abs(float(dropped.float().mean()) - 0.1) < 0.015  # 4,000 Bernoulli(0.1): sd 0.005
    assert not dropped_class_tokens(labels, LAYOUT, 0.0).eq(LAYOUT.null_token).any()
    assert dropped_class_tokens(labels, LAYOUT, 1.0).eq(LAYOUT.null_token).all()


def test_training_steps_lower_the_loss_on_a_batch():
    # The Lightning wiring runs in the CLI test below; here only the module's loss and optimiser.
    module = TokenARModule(width=32, layers=1, heads=2, lr=1e-2)
    images, labels = digits(32)
    optimiser = module.configure_optimizers()
    with torch.no_grad():
        before = float(module._loss((images, labels), 0.0))
    for _ in range(12):
        loss = module._loss((images, labels), module.hparams.p_uncond)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(module._loss((images, labels), 0.0))
    assert after < 0.7 * before  # log(28) ≈ 3.3 at initialisation


def test_sample_contract_and_forward_counts():
    module = TokenARModule(width=32, layers=1, heads=2)
    labels = torch.tensor([3, 7])
    module.model.reset_stats()
    x = module.sample(labels, 2.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8) and float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    levels = (x + 1.0) * 8.0
    torch.testing.assert_close(levels, levels.round())  # 17 grey levels
    # Class + null rows together; the prefill runs the two identical null rows once.
    assert (module.model.stats.calls, module.model.stats.rows) == (64, 64 * 4 - 1)
    module.model.reset_stats()
    module.sample(labels, 1.0)
    assert module.model.stats.rows == 64 * 2  # no guidance, no reference rows


def test_recipe_config_runs_through_lightning_cli(tmp_path):
    from recipes.train_autoregressive import main

    cli = main(
        [
            "fit",
            "--config",
            "unified_guidance/recipes/ar_digits.yaml",
            "--trainer.fast_dev_run=1",
            "--model.width=32",
            "--model.layers=1",
            "--model.heads=2",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert isinstance(cli.model, TokenARModule) and cli.model.hparams.p_uncond == 0.1
    assert cli.trainer.global_step == 1


def test_activation_reaches_the_gpt2_and_the_demo_cache_key():
    from unified_guidance.demo.runners.autoregressive import ARRunner

    x = torch.linspace(-3, 3, 61)
    exact, tanh = torch.nn.functional.gelu(x), torch.nn.functional.gelu(x, approximate="tanh")
    for name, expected in (("gelu", exact), ("gelu_pytorch_tanh", tanh)):
        lm = TokenARModule(width=32, layers=1, heads=2, activation=name).lm
        assert lm.config.activation_function == name
        torch.testing.assert_close(lm.transformer.h[0].mlp.act(x), expected, rtol=0, atol=1e-7)
    assert (exact - tanh).abs().max() > 1e-4  # two different networks: the cache must tell them apart
    runner = ARRunner()
    for quick in (True, False):
        config = runner.config(quick)
        assert config["activation"] == "gelu"
        assert runner.build(config).lm.config.activation_function == "gelu"
