"""``instrobust-hf`` gives the harness's own ``hf`` numbers, with one encoder pass per context.

Everything is real: lm-eval's HFLM and simple_evaluate, tiny transformers models from
``tests/tiny_models.py``, a PEFT prefix-tuning adapter saved to disk and loaded with ``peft=PATH``,
our MMLU task YAMLs (letter and cloze scoring) over the real question pool, and lm-eval's CLI.
Encoder passes are counted with a forward hook on the model's encoder, so the tests fail if the
backend silently takes the slow path.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TASKS = ["mmlu_unobs_01", "mmlu_cloze_unobs_01"]
LIMIT = 6
TOL = 1e-5
REL_TOL = 2.5e-7  # ~2 float32 ulps of the sum


def make_lm(name: str, pretrained: Path, **kwargs):
    import instrobust.models  # noqa: F401  (registers instrobust-hf)
    from lm_eval.api.registry import get_model

    return get_model(name)(pretrained=str(pretrained), device="cpu", dtype="float32", **kwargs)


class EncoderRows:
    """Counts the rows the model's encoder processes (a real forward hook, not a mock)."""

    def __init__(self, lm):
        self.rows = 0
        self.calls = 0
        self._handle = lm.model.get_encoder().register_forward_hook(self._hook)

    def _hook(self, _module, _args, output):
        self.calls += 1
        self.rows += int(output[0].shape[0])

    def close(self):
        self._handle.remove()


def assert_same_answers(got, want, what: str):
    assert len(got) == len(want), what
    for i, ((ll, greedy), (ll_ref, greedy_ref)) in enumerate(zip(got, want)):
        assert math.isfinite(ll), f"{what}[{i}]: {ll}"
        # 1e-5, widened to float32 rounding for long continuations: hf's own answer for a 59-nat
        # request moves by 1.1e-5 between its batch sizes 1 and 2 (tiny T5, BBL_OPTIONS)
        assert abs(ll - ll_ref) <= max(TOL, REL_TOL * abs(ll_ref)), f"{what}[{i}]: loglikelihood {ll} != hf {ll_ref}"
        assert greedy == greedy_ref, f"{what}[{i}]: is_greedy {greedy} != hf {greedy_ref}"


# -- MMLU tasks through simple_evaluate --------------------------------------------------------


def mmlu_answers(lm, task_manager, tasks=TASKS, limit=LIMIT):
    """Per-request (loglikelihood, is_greedy), keyed by task, doc and option; plus the prompts."""
    import lm_eval

    out = lm_eval.simple_evaluate(
        model=lm, tasks=tasks, limit=limit, task_manager=task_manager, log_samples=True,
        bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0,
    )
    answers, requests = {}, []
    for task, samples in out["samples"].items():
        for sample in samples:
            for j, (resp, args) in enumerate(zip(sample["resps"], sample["arguments"])):
                ll, greedy = resp[0]
                answers[(task, sample["doc_id"], j)] = (float(ll), bool(greedy))
                requests.append((task, args[0], args[1]))
    return answers, requests, out["results"]


def compare_mmlu(got: dict, want: dict, what: str):
    assert got.keys() == want.keys(), what
    keys = sorted(want)
    assert_same_answers([got[k] for k in keys], [want[k] for k in keys], what)


@pytest.fixture(scope="module")
def hf_mmlu(tiny_t5, task_manager, data_dir):
    lm = make_lm("hf", tiny_t5, batch_size=1)
    rows = EncoderRows(lm)
    answers, requests, _ = mmlu_answers(lm, task_manager)
    rows.close()
    return answers, requests, rows.rows


def test_mmlu_tasks_cover_single_and_multi_token_options(tiny_t5, hf_mmlu):
    lm = make_lm("hf", tiny_t5)
    _, requests, _ = hf_mmlu
    lengths = {task: [len(lm._encode_pair(ctx, cont)[1]) for t, ctx, cont in requests if t == task] for task in TASKS}
    assert lengths["mmlu_unobs_01"] and set(lengths["mmlu_unobs_01"]) == {1}, lengths["mmlu_unobs_01"]
    assert max(lengths["mmlu_cloze_unobs_01"]) > 3, lengths["mmlu_cloze_unobs_01"]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_mmlu_letter_and_cloze_match_hf(tiny_t5, task_manager, hf_mmlu, batch_size):
    want, requests, hf_encoder_rows = hf_mmlu
    lm = make_lm("instrobust-hf", tiny_t5, batch_size=batch_size)
    rows = EncoderRows(lm)
    got, _, _ = mmlu_answers(lm, task_manager)
    rows.close()
    compare_mmlu(got, want, f"instrobust-hf batch_size={batch_size}")
    # the point of the backend: one encoder row per distinct prompt instead of one per option
    contexts = {ctx for _, ctx, _ in requests}
    assert hf_encoder_rows == len(requests) == 4 * LIMIT * len(TASKS)
    assert rows.rows == len(contexts) < len(requests)
    assert rows.calls == math.ceil(len(contexts) / batch_size)


def test_fast_false_is_the_parent_path(tiny_t5, task_manager, hf_mmlu):
    want, requests, _ = hf_mmlu
    lm = make_lm("instrobust-hf", tiny_t5, batch_size=2, fast="False")
    rows = EncoderRows(lm)
    got, _, _ = mmlu_answers(lm, task_manager, tasks=["mmlu_unobs_01"])
    rows.close()
    compare_mmlu(got, {k: v for k, v in want.items() if k[0] == "mmlu_unobs_01"}, "instrobust-hf fast=False")
    assert rows.rows == len(got) == 4 * LIMIT  # one encoder row per option: hf's path


def test_bad_fast_flag_is_a_clear_error(tiny_t5):
    from instrobust.errors import InstrobustError

    with pytest.raises(InstrobustError, match=r"fast='maybe'.*True or False"):
        make_lm("instrobust-hf", tiny_t5, fast="maybe")


# -- BIG-bench-Lite-style requests, built as Instances -----------------------------------------

BBL_CONTEXTS = [
    "Q: Is the following sentence plausible? The cat sat on the mat.\nA:",
    "Determine whether the second sentence follows from the first.\nPremise: It rained.\nHypothesis: The street is wet.\nAnswer:",
    "Which word is the odd one out? apple, banana, car, cherry\nThe answer is",
    "Options: A. one B. two C. three D. four. Reply with the letter only.",
]
BBL_OPTIONS = [" Yes", " No", " True", " False", " car", " cherry", " the cat", " the cat sat",
               " the cat sat down", " A", " B. two", " B. three", " Yes"]  # " Yes" twice: duplicate requests


def greedy_continuations(lm, context: str, steps=(1, 3)) -> list[str]:
    """Continuations the model's greedy decoding produces, kept when they tokenise back exactly.

    Greedy decoding is done with plain forward passes (the harness's notion of greedy), not
    ``model.generate``: under transformers 5.24 + PEFT 0.21 ``generate`` drops a prefix-tuning
    adapter's prefixes (PEFT passes ``past_key_values``, which transformers now renames to ``cache``,
    and generate already sets ``cache``), so its tokens are the base model's, not the adapter's.
    """
    ctx = torch.tensor([lm.tok_encode(context)])
    ids: list[int] = []
    with torch.no_grad():
        for _ in range(max(steps)):
            if lm.backend == "seq2seq":
                dec = torch.tensor([[lm.model.config.decoder_start_token_id, *ids]])
                logits = lm.model(input_ids=ctx, attention_mask=torch.ones_like(ctx), decoder_input_ids=dec).logits
            else:
                logits = lm.model(input_ids=torch.cat([ctx, torch.tensor([ids], dtype=torch.long)], dim=1)).logits
            ids.append(int(logits[0, -1].argmax()))
    found = []
    for n in steps:
        text = lm.tokenizer.decode(ids[:n])
        if lm._encode_pair(context, text)[1] == ids[:n]:
            found.append(text)
    return found


def bbl_instances(lm):
    from lm_eval.api.instance import Instance

    pairs = [(c, o) for c in BBL_CONTEXTS for o in BBL_OPTIONS]
    for c in BBL_CONTEXTS:
        pairs += [(c, g) for g in greedy_continuations(lm, c)]
    pairs.insert(3, (BBL_CONTEXTS[2], " Maybe"))  # a context's requests need not be adjacent
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


@pytest.fixture(scope="module")
def prefix_adapter(tiny_t5, tmp_path_factory) -> Path:
    """A PEFT prefix-tuning adapter on the tiny T5, with non-trivial (random) prefixes."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    base = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)
    # T5's attention width is num_heads*d_kv, which need not equal d_model
    config = PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=5,
                                token_dim=base.config.num_heads * base.config.d_kv)
    model = get_peft_model(base, config)
    torch.manual_seed(1)
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=1.0)
    path = tmp_path_factory.mktemp("prefix_adapter")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def lora_adapter(tiny_t5, tmp_path_factory) -> Path:
    """A PEFT LoRA adapter on the tiny T5's attention, with non-zero (random) B matrices."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    model = get_peft_model(AutoModelForSeq2SeqLM.from_pretrained(tiny_t5),
                           LoraConfig(task_type="SEQ_2_SEQ_LM", r=4, target_modules=["q", "k", "v", "o"]))
    torch.manual_seed(2)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # initialised to zero: make the adapter change the model
            torch.nn.init.normal_(p, std=0.1)
    path = tmp_path_factory.mktemp("lora_adapter")
    model.save_pretrained(path)
    return path


@pytest.mark.parametrize("adapter", [None, "prefix", "lora"], ids=["plain", "prefix_adapter", "lora_adapter"])
def test_bbl_requests_match_hf(tiny_t5, prefix_adapter, lora_adapter, adapter):
    extra = {"peft": str({"prefix": prefix_adapter, "lora": lora_adapter}[adapter])} if adapter else {}
    hf = make_lm("hf", tiny_t5, batch_size=1, **extra)
    instances = bbl_instances(hf)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    assert any(greedy for _, greedy in want), "no greedy continuation in the request set: weak test"
    assert not all(greedy for _, greedy in want)
    for batch_size in (1, 4, "auto"):
        # max_batch_size bounds the harness's probe passes for "auto" (it starts there and halves on OOM)
        lm = make_lm("instrobust-hf", tiny_t5, batch_size=batch_size, max_batch_size=8, **extra)
        rows = EncoderRows(lm)
        got = lm.loglikelihood(instances, disable_tqdm=True)
        rows.close()
        assert_same_answers(got, want, f"bbl adapter={adapter} batch_size={batch_size}")
        if batch_size == "auto":  # the harness's own detector ran (its probe passes hit the encoder too)
            assert lm.batch_sizes == {0: 8}
        else:
            assert rows.rows == len(BBL_CONTEXTS)
        # option texts are decoded on the shared cross-attention cache, except under prefix tuning,
        # whose prefixes travel in that cache (then each option row is decoded whole)
        assert (lm._seq2seq_cache_arg in ("cache", "past_key_values")) == (adapter != "prefix")
    if adapter:  # the adapter really changes the scores (so the comparison above covers it)
        plain = make_lm("hf", tiny_t5, batch_size=4).loglikelihood(instances, disable_tqdm=True)
        assert max(abs(a[0] - b[0]) for a, b in zip(plain, want)) > 0.05


def test_prefix_adapter_mmlu_matches_hf(tiny_t5, prefix_adapter, task_manager, data_dir):
    want, _, _ = mmlu_answers(make_lm("hf", tiny_t5, batch_size=4, peft=str(prefix_adapter)), task_manager, limit=3)
    got, _, _ = mmlu_answers(make_lm("instrobust-hf", tiny_t5, batch_size=4, peft=str(prefix_adapter)),
                             task_manager, limit=3)
    compare_mmlu(got, want, "mmlu with prefix adapter")


# -- what falls back to the parent --------------------------------------------------------------


class InputTokens:
    """Counts the token positions a causal model embeds (a real forward hook on its input embeddings)."""

    def __init__(self, lm):
        self.tokens = 0
        self._handle = lm.model.get_input_embeddings().register_forward_hook(self._hook)

    def _hook(self, _module, args, _output):
        self.tokens += int(args[0].numel())

    def close(self):
        self._handle.remove()


# the whitespace move (trailing space -> continuation), a one-token context and an empty one
# (both left to hf's code) on top of the BBL-style requests
CAUSAL_EXTRA = [("The answer is ", "car"), ("The answer is ", " cherry"), ("A", ":"), ("", " Yes")]


def causal_instances(lm):
    from lm_eval.api.instance import Instance

    pairs = [tuple(i.args) for i in bbl_instances(lm)] + CAUSAL_EXTRA
    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


@pytest.fixture(scope="module")
def hf_causal(tiny_llama):
    hf = make_lm("hf", tiny_llama, batch_size=1)
    instances = causal_instances(hf)
    tokens = InputTokens(hf)
    want = hf.loglikelihood(instances, disable_tqdm=True)
    tokens.close()
    assert any(g for _, g in want) and not all(g for _, g in want), "weak test: greedy flags all alike"
    return instances, want, tokens.tokens


@pytest.mark.parametrize("batch_size", [1, 3, "auto"])
def test_causal_requests_match_hf(tiny_llama, hf_causal, batch_size):
    instances, want, hf_tokens = hf_causal
    lm = make_lm("instrobust-hf", tiny_llama, batch_size=batch_size, max_batch_size=8)
    assert lm.backend == "causal"
    assert_same_answers(lm.loglikelihood(instances, disable_tqdm=True), want, f"causal batch_size={batch_size}")
    assert lm._causal_mode == "shared"  # the one-pass layout passed its check against hf's code
    tokens = InputTokens(lm)  # counted on a second call: the first one also ran that check
    got = lm.loglikelihood(instances, disable_tqdm=True)
    tokens.close()
    assert_same_answers(got, want, f"causal batch_size={batch_size}, second call")
    if batch_size != "auto":  # the contexts ran once: well under half of hf's token positions
        assert tokens.tokens < hf_tokens / 2, (tokens.tokens, hf_tokens)
    # the two-pass key/value-cache path (models that take no custom mask) gives the same answers
    lm._causal_mode = "cache"
    assert_same_answers(lm.loglikelihood(instances, disable_tqdm=True), want, f"cache path batch_size={batch_size}")


@pytest.mark.parametrize("batch_size", [1, 4])
def test_causal_mmlu_letter_and_cloze_match_hf(tiny_llama, task_manager, data_dir, batch_size):
    want, want_requests, want_results = mmlu_answers(make_lm("hf", tiny_llama, batch_size=batch_size),
                                                     task_manager, limit=4)
    lm = make_lm("instrobust-hf", tiny_llama, batch_size=batch_size)
    lm._shared_checked = True  # (the one-question check against hf would add its tokens to the count)
    tokens = InputTokens(lm)
    got, requests, results = mmlu_answers(lm, task_manager, limit=4)
    tokens.close()
    assert sorted(requests) == sorted(want_requests)  # the same prompts and options
    compare_mmlu(got, want, f"causal mmlu batch_size={batch_size}")
    for task in TASKS:
        assert results[task]["acc,none"] == want_results[task]["acc,none"], task
    # cloze: each question's context once, not once per option (a letter question was already once in hf)
    hf_cloze_tokens = sum(len(c) + len(o) for t, c, o in requests if t == "mmlu_cloze_unobs_01")
    assert tokens.tokens < 0.6 * hf_cloze_tokens, (tokens.tokens, hf_cloze_tokens)


@pytest.fixture(scope="module")
def prompt_tuning_adapter(tiny_llama, tmp_path_factory) -> Path:
    """A PEFT prompt-tuning adapter on the tiny Llama: virtual tokens a shared cache would not carry."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama),
                           PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    path = tmp_path_factory.mktemp("prompt_tuning")
    model.save_pretrained(path)
    return path


def test_causal_fallbacks_match_hf_and_say_so(tiny_llama, hf_causal, prompt_tuning_adapter, caplog):
    instances, _, _ = hf_causal
    # a prompt-tuning adapter: the whole model goes to hf's path, with one warning naming why
    hf = make_lm("hf", tiny_llama, batch_size=2, peft=str(prompt_tuning_adapter))
    with caplog.at_level("WARNING", logger="instrobust.models"):
        lm = make_lm("instrobust-hf", tiny_llama, batch_size=2, peft=str(prompt_tuning_adapter))
        got = lm.loglikelihood(instances, disable_tqdm=True)
        lm.loglikelihood(instances[:3], disable_tqdm=True)
    said = [r.getMessage() for r in caplog.records if "plain hf scoring path" in r.getMessage()]
    assert said == ["instrobust-hf: using the plain hf scoring path because the PEFT adapter is "
                    "PROMPT_TUNING, which feeds the model its own virtual tokens or cache"]
    assert_same_answers(got, hf.loglikelihood(instances, disable_tqdm=True), "prompt tuning")
    # requests hf would left-truncate go to hf's code; the others still take the fast path
    want = make_lm("hf", tiny_llama, batch_size=2, max_length=24).loglikelihood(instances, disable_tqdm=True)
    lm = make_lm("instrobust-hf", tiny_llama, batch_size=2, max_length=24)
    lengths = [sum(map(len, lm._encode_pair(*i.args))) if i.args[0] else 0 for i in instances]
    assert min(lengths) <= 25 < max(lengths)  # both kinds present
    assert_same_answers(lm.loglikelihood(instances, disable_tqdm=True), want, "max_length=24")


def test_rolling_and_generation_use_parent_path(tiny_t5):
    from lm_eval.api.instance import Instance

    hf = make_lm("hf", tiny_t5, batch_size=2)
    lm = make_lm("instrobust-hf", tiny_t5, batch_size=2)
    rolling = [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(BBL_CONTEXTS)]
    got, want = lm.loglikelihood_rolling(rolling, disable_tqdm=True), hf.loglikelihood_rolling(rolling, disable_tqdm=True)
    assert all(abs(a - b) <= TOL for a, b in zip(got, want, strict=True)), (got, want)
    # seq2seq generation in lm-eval runs to len(context) + max_gen_toks: keep the prompts short
    gen = [Instance("generate_until", {}, (c, {"until": ["\n"], "max_gen_toks": 2}), i)
           for i, c in enumerate(["Answer:", "Reply with the letter only."])]
    assert lm.generate_until(gen, disable_tqdm=True) == hf.generate_until(gen, disable_tqdm=True)


# -- the real CLI --------------------------------------------------------------------------------


@pytest.mark.slow  # ~40 s: the CLI subprocess indexes all of lm-eval's task YAMLs
def test_cli_accuracy_equals_hf(tiny_t5, task_manager, tmp_path, data_dir):
    limit = 8
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "instrobust.lm_eval_cli", "--model", "instrobust-hf",
           "--model_args", f"pretrained={tiny_t5},dtype=float32", "--include_path", str(REPO / "lm_eval_tasks"),
           "--tasks", "mmlu_unobs_01", "--limit", str(limit), "--device", "cpu", "--batch_size", "4",
           "--output_path", str(tmp_path), "--log_samples"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [results_file] = tmp_path.rglob("results_*.json")
    cli = json.loads(results_file.read_text())
    assert cli["config"]["model"] == "instrobust-hf"
    [samples_file] = tmp_path.rglob("samples_mmlu_unobs_01_*.jsonl")
    cli_samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(cli_samples) == limit

    want, _, results = mmlu_answers(make_lm("hf", tiny_t5, batch_size=1), task_manager, tasks=["mmlu_unobs_01"], limit=limit)
    assert cli["results"]["mmlu_unobs_01"]["acc,none"] == results["mmlu_unobs_01"]["acc,none"]
    got = {("mmlu_unobs_01", s["doc_id"], j): (float(r[0][0]), r[0][1] in (True, "True"))
           for s in cli_samples for j, r in enumerate(s["resps"])}
    compare_mmlu(got, want, "CLI run")
