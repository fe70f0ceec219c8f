"""Small conditional networks ``net(x, t, labels)`` for digits (8×8) and 2-D data, and a small GPT-2.

Labels are ``(B,)`` long tensors; index ``num_classes`` is the learned null
token ∅, so an adapter takes ``null_cond=num_classes``. Time ``t`` is a ``(B,)``
or scalar float in [0, 1] (whatever the paradigm's path uses). Outputs have the
shape of ``x``. These are plain ``nn.Module``s: the paradigm adapters turn them
into :class:`~unified_guidance.core.ConditionalModel`s.

One file per network, all conditioned through one module:

* :mod:`.embedding`: :class:`~.embedding.ConditioningEmbedding`, time and label → one vector
  (every network's conditioning input), and :class:`~.embedding.StrengthEmbedding`, the guidance
  strength β = 1/s of a guidance-free network (also a causal LM's, through its input embeddings);
* :mod:`.unet`: :class:`~.unet.TinyUNet`, a two-level U-Net for small images;
* :mod:`.mlp`: :class:`~.mlp.MLPNet`, an MLP for low-dimensional data;
* :mod:`.dit`: :class:`~.dit.TinyDiT`, a patch transformer with adaLN-Zero blocks, the attention
  network among them, for perturbation references (PAG, SEG, SLG);
* :mod:`.default`: :func:`~.default.default_net`, the network for a sample shape (what the
  training modules build);
* :mod:`.gpt2`: :func:`~.gpt2.tiny_gpt2`, a small transformers GPT-2 for a vocabulary of one's own.

This package imports only torch, transformers (on use) and :mod:`unified_guidance.core`.
"""

from .dit import TinyDiT
from .mlp import MLPNet
from .unet import TinyUNet

__all__ = [
    "MLPNet",
    "TinyDiT",
    "TinyUNet",
]
