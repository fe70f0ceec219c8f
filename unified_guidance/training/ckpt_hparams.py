"""A ``--ckpt_path``'s hyper-parameters in a recipe's configuration, under the command line's.

A checkpoint must rebuild the network it was trained with (its ``width``, ``arch``, classes),
whatever the YAML or a ``--config`` file says; but a model setting the user types now must
win over what the checkpoint says (``predict --ckpt_path … --model.sample_steps=7``).
Lightning's LightningCLI applies the checkpoint's hyper-parameters over the whole parsed
configuration, command line included. Here they go in as a last ``--config``, followed by
the command line's own ``--model`` arguments once more, so the order of precedence is: the
recipe's YAML < ``--config`` files < the checkpoint < ``--model.*`` on the command line.
The checkpoint is read through :func:`~.verified.load_verified`: a
damaged one is refused before anything is built, in argparse's format (exit status 2).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from .verified import DamagedFileError, UnverifiedFileWarning, load_verified
from .verified_io import REMEDY


def checkpoint_hparams(path: str | Path) -> dict[str, Any]:
    """The model section a checkpoint's hyper-parameters make (``class_path``/``init_args`` for a
    module saved under LightningCLI's subclass mode); ``{}`` when it saved none."""
    with warnings.catch_warnings():  # a checkpoint without digest is warned about once, when it is restored
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        ckpt = load_verified(path, remedy=REMEDY, require_digest=False)
    hparams = dict(ckpt.get("hyper_parameters") or {}) if isinstance(ckpt, dict) else {}
    hparams.pop("_instantiator", None)
    if "_class_path" in hparams:
        return {"class_path": hparams.pop("_class_path"), "init_args": hparams}
    return hparams


def with_checkpoint_hparams(parser: Any, config: Any, args: Any) -> Any:
    """``config`` parsed again with the ``--ckpt_path`` checkpoint's hyper-parameters under the ``--model`` values.

    Args:
        parser: the LightningCLI's parser; ``config``: what it parsed from ``args``.
        args: what the CLI was given: a list of strings (``None``: ``sys.argv[1:]``) or a dict/Namespace.
    """
    sub = config.get("subcommand")
    ckpt = config[sub].get("ckpt_path") if sub else None
    if not ckpt or not Path(ckpt).is_file():  # "last", "best", a missing file: Lightning's to resolve or refuse
        return config
    try:
        model = checkpoint_hparams(ckpt)
    except DamagedFileError as err:
        parser.error(f"--ckpt_path: {err}")
    if not model:
        return config
    if args is not None and not isinstance(args, (list, tuple)):  # a dict or Namespace: its values win
        given = args.as_dict() if hasattr(args, "as_dict") else dict(args)
        return parser.parse_object(_merged({sub: {"model": model}}, given))
    argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
    typed = model_arguments(argv[argv.index(sub) + 1 :])
    return parser.parse_args([*argv, "--config", json.dumps({"model": model}), *typed])


def model_arguments(argv: list[str]) -> list[str]:
    """The ``--model`` and ``--model.NAME`` arguments of a command line, each with its value
    (``--model.x=1`` or ``--model.x 1``)."""
    typed: list[str] = []
    i = 0
    while i < len(argv):
        name = argv[i].split("=", 1)[0]
        if name != "--model" and not name.startswith("--model."):
            i += 1
            continue
        width = 1 if "=" in argv[i] else 2
        typed += argv[i : i + width]
        i += width
    return typed


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values in, recursively (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
