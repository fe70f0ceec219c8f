"""A ``--ckpt_path``'s hyper-parameters in a recipe's configuration, under the command line's.

A checkpoint must rebuild the network it was trained with (its ``width``, ``arch``, classes),
whatever the YAML says; but what the user types now must win over what the checkpoint says
(``predict --ckpt_path … --model.sample_steps=7``). Lightning's LightningCLI applies the
checkpoint's hyper-parameters over the whole parsed configuration, command line included.
Here they go in as a ``--config`` right after the subcommand, so the order of precedence is
jsonargparse's own: the recipe's YAML < the checkpoint < later ``--config`` files < the
command-line values. The checkpoint is read through :func:`~.verified.load_verified`: a
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
    """``config`` parsed again with the ``--ckpt_path`` checkpoint's hyper-parameters under the user's values.

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
    at = argv.index(sub) + 1
    return parser.parse_args([*argv[:at], "--config", json.dumps({"model": model}), *argv[at:]])


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values in, recursively (``over`` wins)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
