"""The model's representation of the first decoded token, at the penultimate layer (paper, section 4.5).

Seq2seq: the decoder's hidden state at the first decoding step (decoder input = the decoder start
token), which is where the answer's first token is predicted. Causal: the hidden state at the last
prompt token, the position whose output predicts the first answer token. "Penultimate layer" is
``hidden_states[-2]``: the output of the second-to-last block (``hidden_states[-1]`` is the last
block's output after the final norm).

The prompt is what lm-eval feeds the model: ``render(instruction, doc)`` with trailing whitespace
moved out of the context (lm-eval moves it into the continuation), tokenized with the tokenizer's
default special tokens. Rows are padded on the right, whatever the tokenizer's own padding side:
with right padding a real token never attends to padding (the encoder masks it, causal attention
cannot look ahead), and positions are the unpadded ones for every kind of position embedding.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from instrobust.analysis.docs import docs_for, sample_doc_ids
from instrobust.analysis.errors import AnalysisError
from instrobust.analysis.store import Representations, Row
from instrobust.analysis.tasks import AnalysisTask

LAYER = -2
POSITION = {
    True: "decoder hidden state at the first decoding step (decoder input: the decoder start token)",
    False: "hidden state at the last prompt token (the position predicting the first answer token)",
}
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ExtractConfig:
    """How to sample examples and run the model."""

    n_examples: int = 300   # per example pool (MMLU, or each BIG-bench task), seeded
    seed: int = 0
    batch_size: int = 16
    max_length: int | None = None  # keep the last N prompt tokens (lm-eval truncates on the left too)
    progress: bool = True


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    is_encoder_decoder: bool
    name: str
    peft: str | None
    device: Any
    dtype: str

    def describe(self) -> dict:
        return {"model": self.name, "peft": self.peft, "architecture": "seq2seq" if self.is_encoder_decoder else "causal",
                "layer": LAYER, "position": POSITION[self.is_encoder_decoder], "dtype": self.dtype}


def pick_device(device: str | None):
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise AnalysisError(f"--device {device!r}: {exc}") from None


def load_model(path: str, device: str | None = None, dtype: str = "float32") -> LoadedModel:
    """A seq2seq or causal LM (picked from ``config.is_encoder_decoder``) and its tokenizer, in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if dtype not in DTYPES:
        raise AnalysisError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    try:
        config = AutoConfig.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # transformers raises OSError/ValueError/... with its own message
        raise AnalysisError(f"--model {path!r}: cannot load its config or tokenizer ({type(exc).__name__}: {exc})") from None
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    torch_device = pick_device(device)
    try:
        model = auto.from_pretrained(path, dtype=getattr(torch, dtype))
    except Exception as exc:
        raise AnalysisError(f"--model {path!r}: cannot load the weights ({type(exc).__name__}: {exc})") from None
    model.to(torch_device).eval()
    return LoadedModel(model, tokenizer, bool(config.is_encoder_decoder), str(path), None, torch_device, dtype)


def with_adapter(loaded: LoadedModel, adapter: str) -> LoadedModel:
    """``loaded`` with a PEFT adapter (e.g. an instrobust-train soft prompt) on top.

    The base model is wrapped in place: take the base representations first.
    """
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(loaded.model, adapter)
    except Exception as exc:
        raise AnalysisError(f"--peft {adapter!r}: cannot load the adapter onto {loaded.name!r} "
                            f"({type(exc).__name__}: {exc})") from None
    model.to(loaded.device).eval()
    return LoadedModel(model, loaded.tokenizer, loaded.is_encoder_decoder, loaded.name, str(adapter),
                       loaded.device, loaded.dtype)


def _decoder_start(model) -> int:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for cfg in (base.config, getattr(base, "generation_config", None)):
        start = getattr(cfg, "decoder_start_token_id", None)
        if start is not None:
            return int(start)
    raise AnalysisError("the seq2seq model defines no decoder_start_token_id (config or generation_config)")


def _skip_logits(model) -> dict:
    """Forward kwargs that spare the LM head: logits over the whole vocabulary at every position
    (e.g. 16 x 300 x 49k floats, ~1 GB) are never used here; one position's worth is."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def lm_eval_context(prompt: str) -> str:
    """The context lm-eval scores after: trailing whitespace goes to the continuation."""
    return prompt.rstrip()


def first_token_states(loaded: LoadedModel, prompts: Sequence[str], batch_size: int = 16,
                       max_length: int | None = None, progress: bool = False, desc: str = "representations") -> np.ndarray:
    """``[len(prompts), hidden]`` float32: the first-decoded-token vector of each prompt (see module doc)."""
    import torch
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise AnalysisError(f"--batch-size must be at least 1, got {batch_size}")
    contexts = [lm_eval_context(p) for p in prompts]
    ids = loaded.tokenizer(contexts, truncation=False)["input_ids"] if contexts else []
    for i, seq in enumerate(ids):
        if not seq:
            raise AnalysisError(f"prompt {i} tokenizes to nothing: {prompts[i][:80]!r}")
    if max_length:
        ids = [seq[-max_length:] for seq in ids]
    # Longest first: similar lengths share a batch (less padding) and memory errors show up at once.
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad = loaded.tokenizer.pad_token_id
    pad = 0 if pad is None else int(pad)
    start = _decoder_start(loaded.model) if loaded.is_encoder_decoder else None
    lean = _skip_logits(loaded.model)
    out: np.ndarray | None = None
    batches = range(0, len(order), batch_size)
    with torch.inference_mode():
        for b in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            rows = order[b:b + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, i in enumerate(rows):
                input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
                mask[j, : len(ids[i])] = 1
            input_ids, mask = input_ids.to(loaded.device), mask.to(loaded.device)
            if loaded.is_encoder_decoder:
                dec = torch.full((len(rows), 1), start, dtype=torch.long, device=loaded.device)
                res = loaded.model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=dec,
                                   output_hidden_states=True, use_cache=False, return_dict=True)
                states = res.decoder_hidden_states[LAYER][:, 0, :]
            else:
                res = loaded.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True,
                                   use_cache=False, return_dict=True, **lean)
                hidden = res.hidden_states[LAYER]
                # Prompt tuning prepends virtual tokens to the sequence; prefix tuning does not.
                offset = hidden.shape[1] - input_ids.shape[1]
                last = mask.sum(dim=1) - 1 + offset
                states = hidden[torch.arange(len(rows), device=hidden.device), last]
            states = states.float().cpu().numpy()
            if out is None:
                out = np.empty((len(ids), states.shape[1]), dtype=np.float32)
            out[rows] = states
    if out is None:
        raise AnalysisError("no prompts to run")
    return out


def build_rows(tasks: Sequence[AnalysisTask], n_examples: int, seed: int) -> tuple[list[Row], list[str]]:
    """(index rows, prompts): every task over the same seeded sample of its pool's examples."""
    from instrobust.bank import render
    from instrobust.errors import UnknownInstructionError
    from instrobust.harness import instruction

    by_pool: dict[tuple[str, str], list[AnalysisTask]] = defaultdict(list)
    for t in tasks:
        by_pool[(t.benchmark, t.source)].append(t)
    rows: list[Row] = []
    prompts: list[str] = []
    for (benchmark, source), group in by_pool.items():
        docs = docs_for(benchmark, source)
        doc_ids = sample_doc_ids(len(docs), n_examples, seed, source)
        for t in group:
            try:
                ins = instruction(t.instruction)
            except UnknownInstructionError as exc:  # it names the collection that could not be loaded
                raise AnalysisError(
                    f"task {t.name!r}: {exc} Leave out the tasks of collections that are not loaded "
                    f"(e.g. mmlu_observed_flan2022,mmlu_observed_p3 instead of mmlu_observed_all).") from None
            for d in doc_ids:
                rows.append(Row(t.name, t.instruction, source, d))
                prompts.append(render(ins, docs[d]))
    return rows, prompts


def extract(loaded: LoadedModel, tasks: Sequence[AnalysisTask], cfg: ExtractConfig, label: str = "base") -> Representations:
    """Representations of ``tasks`` under ``loaded`` (rows: task x sampled example)."""
    rows, prompts = build_rows(tasks, cfg.n_examples, cfg.seed)
    vectors = first_token_states(loaded, prompts, cfg.batch_size, cfg.max_length, cfg.progress,
                                 desc=f"{label}: first-token states")
    meta = {**loaded.describe(), "label": label, "n_examples": cfg.n_examples, "seed": cfg.seed,
            "max_length": cfg.max_length}
    return Representations(vectors=vectors, rows=rows, tasks={t.name: t for t in tasks}, meta=meta)
