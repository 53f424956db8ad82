"""Time `instrobust analyze`'s representation extraction against plain one-prompt-at-a-time forward passes.

    python benchmarks/bench_analysis.py                       # tiny T5 and tiny Llama built on the fly
    python benchmarks/bench_analysis.py --model PATH [--tasks mmlu_obs_p3_01,mmlu_unobs_07] [--n-examples 20]

Same prompts, same vectors (the max difference is printed): the plain way is
``model(**tokenizer(prompt), output_hidden_states=True)`` per prompt, reading hidden_states[-2]
at the first decoded token; ours is ``first_token_states`` (length-sorted right-padded batches,
no full-vocabulary logits). Prints seconds and the speed-up ratio.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/tiny_models.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def plain(path: str, prompts: list[str]):
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    seq2seq = AutoConfig.from_pretrained(path).is_encoder_decoder
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    out = []
    started = time.perf_counter()
    with torch.inference_mode():
        for p in prompts:
            enc = tok(p.rstrip(), return_tensors="pt")
            if seq2seq:
                start = torch.tensor([[model.config.decoder_start_token_id]])
                out.append(model(**enc, decoder_input_ids=start, output_hidden_states=True).decoder_hidden_states[-2][0, 0])
            else:
                out.append(model(**enc, output_hidden_states=True).hidden_states[-2][0, -1])
    return time.perf_counter() - started, np.stack([o.float().numpy() for o in out])


def ours(path: str, prompts: list[str], batch_size: int):
    from instrobust.analysis import first_token_states, load_model

    loaded = load_model(path, device="cpu")
    started = time.perf_counter()
    vectors = first_token_states(loaded, prompts, batch_size=batch_size)
    return time.perf_counter() - started, vectors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model folder(s); default: tiny T5 + tiny Llama")
    ap.add_argument("--tasks", default="mmlu_obs_p3_01,mmlu_obs_p3_03,mmlu_unobs_01,mmlu_unobs_07")
    ap.add_argument("--n-examples", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    import numpy as np
    import torch

    from instrobust.analysis import resolve_tasks
    from instrobust.analysis.extract import build_rows

    models = args.model
    if not models:
        from tiny_models import build_tiny_llama, build_tiny_t5

        tmp = tempfile.mkdtemp(prefix="bench_analysis_")
        models = [str(build_tiny_t5(os.path.join(tmp, "t5"), d_model=128, layers=4, heads=4)),
                  str(build_tiny_llama(os.path.join(tmp, "llama"), hidden=128, layers=4, heads=4))]
    _, prompts = build_rows(resolve_tasks(args.tasks.split(",")), args.n_examples, 0)
    print(f"{len(prompts)} prompts ({args.tasks}, {args.n_examples} examples each), torch threads {torch.get_num_threads()}")
    for path in models:
        t_plain, v_plain = plain(path, prompts)
        t_ours, v_ours = ours(path, prompts, args.batch_size)
        diff = float(np.abs(v_plain - v_ours).max())
        print(f"{path}: plain per-prompt {t_plain:.2f} s, instrobust batched (bs={args.batch_size}) {t_ours:.2f} s, "
              f"speed-up x{t_plain / t_ours:.2f}, max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
