"""Bootstrap intervals: the identity draw reproduces the point metrics; paired differences; resolution."""

import torch
from demo_support import NearestMean

from unified_guidance.data import load_digits_split
from unified_guidance.demo.evaluate import measure, reference
from unified_guidance.demo.intervals import bootstrap_draws, replicates, resolved


def _setup():
    evaluator = NearestMean()
    split = load_digits_split(0.2, seed=0)
    ref = reference(evaluator, split.train_images, split.train_labels)
    gen = torch.Generator().manual_seed(0)
    pick = torch.cat([(split.val_labels == c).nonzero().squeeze(1)[:12] for c in range(10)])
    samples, labels = split.val_images[pick], split.val_labels[pick]
    noisy = (samples + 0.6 * torch.randn(samples.shape, generator=gen)).clamp(-1, 1)
    return evaluator, ref, samples, noisy, labels


def test_the_identity_draw_gives_the_point_estimates():
    evaluator, ref, samples, _, labels = _setup()
    identity = torch.arange(labels.shape[0])[None, :]
    reps = replicates(samples, labels, evaluator, ref, identity)
    point = measure(samples, labels, evaluator, ref)
    expected = torch.tensor([point.adherence, point.precision, point.recall], dtype=torch.float64)
    torch.testing.assert_close(reps.values[0], expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(reps.point, expected, rtol=1e-9, atol=1e-9)


def test_draws_stay_within_each_class_and_differences_are_paired():
    evaluator, ref, samples, noisy, labels = _setup()
    draws = bootstrap_draws(labels, 40, seed=1)
    assert torch.equal(labels[draws], labels.expand_as(draws))  # class c's positions hold class c
    clean = replicates(samples, labels, evaluator, ref, draws)
    damaged = replicates(noisy, labels, evaluator, ref, draws)
    for i, metric in enumerate(("adherence", "precision", "recall")):
        lo, hi = clean.interval(metric)
        assert lo <= float(clean.point[i]) <= hi
    d_lo, d_hi = clean.difference(damaged, "precision")
    assert resolved(d_lo, d_hi) is True  # real digits are more precise than noised ones
    same = clean.difference(clean, "recall")
    assert same == (0.0, 0.0) and resolved(*same) is None
