"""The general token model on one's own sequences: vocabulary, length and classes given, class and
∅ tokens never emitted, samples follow their class, a checkpoint reloads from its path."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from unified_guidance import Guidance
from unified_guidance.autoregressive.tokens import SequenceTokens
from unified_guidance.training.autoregressive import TokenSequenceModule

VOCAB, LENGTH, CLASSES = 6, 5, 3


def class_sequences(labels: torch.Tensor) -> torch.Tensor:
    """Class c's one sequence: c, c + 1, … (mod VOCAB)."""
    return (labels[:, None] + torch.arange(LENGTH)) % VOCAB


def loader() -> DataLoader:
    labels = torch.arange(CLASSES).repeat(64)
    gen = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(class_sequences(labels), labels), batch_size=48, shuffle=True, generator=gen)


def test_layout_places_the_classes_and_the_null_token_after_the_content():
    layout = SequenceTokens(VOCAB, LENGTH, CLASSES)
    assert layout.class_tokens(torch.tensor([0, 2])).tolist() == [6, 8] and layout.null_token == 9
    assert layout.vocab_size == 10 and layout.non_content_tokens() == [6, 7, 8, 9]
    with pytest.raises(ValueError, match="tokens: expected content tokens in \\[0, 5\\]"):
        layout.content_tokens(torch.full((2, LENGTH), 6))
    with pytest.raises(ValueError, match="tokens: expected integer tokens of shape \\(B, 5\\)"):
        layout.content_tokens(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab: expected a positive integer, got 0"):
        SequenceTokens(0, LENGTH, CLASSES)


def test_trains_samples_its_classes_and_reloads_from_the_checkpoint_path(tmp_path):
    module = TokenSequenceModule(VOCAB, LENGTH, CLASSES, width=32, layers=1, heads=2, lr=1e-2)
    untrained = module.sample_tokens(torch.arange(CLASSES).repeat(20), 3.0, generator=torch.Generator().manual_seed(0))
    # What sampling may emit: content tokens only, even from random weights.
    assert untrained.shape == (60, LENGTH) and int(untrained.min()) >= 0 and int(untrained.max()) < VOCAB

    trainer = L.Trainer(max_steps=300, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, enable_checkpointing=False)  # fmt: skip
    trainer.fit(module, loader())
    labels = torch.arange(CLASSES).repeat(20)
    samples = module.sample(labels, Guidance(scale=1.0), generator=torch.Generator().manual_seed(1))
    # Learnt: at s = 1 (the conditional model itself) nearly every sample is its class's sequence.
    assert (samples == class_sequences(labels)).all(dim=1).float().mean() >= 0.95
    guided = module.sample(labels, Guidance(scale=3.0), generator=torch.Generator().manual_seed(1))
    assert guided.shape == (60, LENGTH) and int(guided.max()) < VOCAB

    trainer.save_checkpoint(tmp_path / "last.ckpt")
    reloaded = TokenSequenceModule.load_from_checkpoint(tmp_path / "last.ckpt")  # the path alone
    assert reloaded.layout == SequenceTokens(VOCAB, LENGTH, CLASSES)
    for (k, a), b in zip(module.state_dict().items(), reloaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_batches_outside_the_vocabulary_are_refused_by_name():
    module = TokenSequenceModule(VOCAB, LENGTH, CLASSES, width=16, layers=1, heads=2)
    with pytest.raises(ValueError, match="tokens: expected content tokens"):
        module.training_step((torch.full((2, LENGTH), VOCAB), torch.tensor([0, 1])), 0)
