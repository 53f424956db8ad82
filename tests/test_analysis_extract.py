"""Representation extraction on tiny real models: the vector we save is the hidden state a plain
forward pass gives at the penultimate layer and the right position, batched or not, with or
without a PEFT adapter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from instrobust.analysis import (AnalysisError, ExtractConfig, extract, first_token_states, load_model,
                                 resolve_tasks, with_adapter)
from instrobust.analysis.extract import build_rows

# MMLU test questions with short prompts (the tiny byte-level tokenizer makes long prompts slow).
DOC_IDS = (77, 41, 38)


@pytest.fixture(scope="module")
def prompts(data_dir) -> list[str]:
    from instrobust.bank import render
    from instrobust.mmlu.data import mmlu_split
    from instrobust.harness import instruction

    docs = mmlu_split("test")
    ins = [instruction("mmlu_obs_p3_03"), instruction("mmlu_unobs_07")]
    # Different instructions and questions: rows of clearly different lengths in one batch.
    a, b, c = (docs[i] for i in DOC_IDS)
    return [render(ins[0], a), render(ins[1], b) + "\n", render(ins[0], c)]


def _hand_seq2seq(path, prompts: list[str]) -> np.ndarray:
    """One plain forward pass per prompt, no padding."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    start = torch.tensor([[model.config.decoder_start_token_id]])
    out = []
    for prompt in prompts:
        enc = tok(prompt.rstrip(), return_tensors="pt")  # lm-eval scores after the stripped context
        with torch.no_grad():
            res = model(**enc, decoder_input_ids=start, output_hidden_states=True)
        out.append(res.decoder_hidden_states[-2][0, 0].numpy())
    return np.stack(out)


def _hand_causal(path, prompts: list[str]) -> np.ndarray:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    out = []
    for prompt in prompts:
        enc = tok(prompt.rstrip(), return_tensors="pt")
        with torch.no_grad():
            res = model(**enc, output_hidden_states=True)
        out.append(res.hidden_states[-2][0, -1].numpy())  # the last prompt token predicts the first answer token
    return np.stack(out)


@pytest.mark.parametrize("fixture,hand", [("tiny_t5", _hand_seq2seq), ("tiny_llama", _hand_causal)])
def test_vector_is_the_penultimate_hidden_state_batched_or_not(request, prompts, fixture, hand):
    path = request.getfixturevalue(fixture)
    loaded = load_model(str(path), device="cpu")
    expected = hand(path, prompts)
    lengths = [len(loaded.tokenizer(p.rstrip())["input_ids"]) for p in prompts]
    assert len(set(lengths)) == 3  # the batch really is padded
    one_by_one = first_token_states(loaded, prompts, batch_size=1)
    np.testing.assert_allclose(one_by_one, expected, atol=1e-5)
    padded = first_token_states(loaded, prompts, batch_size=3)
    np.testing.assert_allclose(padded, expected, atol=1e-5)
    # A tokenizer that pads on the left (common for causal LMs) gives the same vectors.
    loaded.tokenizer.padding_side = "left"
    np.testing.assert_allclose(first_token_states(loaded, prompts, batch_size=3), expected, atol=1e-5)
    # The vector is not the last layer's: the index really is -2.
    assert not np.allclose(padded, _last_layer(loaded, prompts[0]), atol=1e-3)


def test_max_length_keeps_the_last_tokens(tiny_llama, prompts):
    loaded = load_model(str(tiny_llama), device="cpu")
    full = first_token_states(loaded, prompts, batch_size=3)
    cut = first_token_states(loaded, prompts, batch_size=3, max_length=24)
    ids = loaded.tokenizer(prompts[0].rstrip(), return_tensors="pt")["input_ids"][:, -24:]
    with torch.no_grad():
        hand = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states[-2][0, -1].numpy()
    np.testing.assert_allclose(cut[0], hand, atol=1e-5)
    assert not np.allclose(cut[0], full[0], atol=1e-4)


def _last_layer(loaded, prompt):
    enc = loaded.tokenizer(prompt.rstrip(), return_tensors="pt")
    with torch.no_grad():
        if loaded.is_encoder_decoder:
            start = torch.tensor([[loaded.model.config.decoder_start_token_id]])
            return loaded.model(**enc, decoder_input_ids=start, output_hidden_states=True).decoder_hidden_states[-1][0, 0].numpy()
        return loaded.model(**enc, output_hidden_states=True).hidden_states[-1][0, -1].numpy()


def _soft_prompt_adapter(model_path, out_dir, causal: bool, kind: str = "prefix"):
    from peft import PrefixTuningConfig, PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model = (AutoModelForCausalLM if causal else AutoModelForSeq2SeqLM).from_pretrained(model_path)
    task_type = TaskType.CAUSAL_LM if causal else TaskType.SEQ_2_SEQ_LM
    if kind == "prompt":  # virtual tokens prepended to the input: hidden states get 4 more positions
        config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=4)
    else:
        kwargs = {}
        if not causal:  # T5 keys/values are num_heads * d_kv wide, which need not equal d_model
            kwargs["token_dim"] = model.config.num_heads * model.config.d_kv
        config = PrefixTuningConfig(task_type=task_type, num_virtual_tokens=4, **kwargs)
    torch.manual_seed(1)
    peft_model = get_peft_model(model, config)  # random init of the soft prompt
    peft_model.save_pretrained(out_dir)
    return out_dir


@pytest.mark.parametrize("fixture,causal,kind", [("tiny_t5", False, "prefix"), ("tiny_llama", True, "prefix"),
                                                 ("tiny_llama", True, "prompt")])
def test_soft_prompt_adapter_changes_the_vectors(request, tmp_path, prompts, fixture, causal, kind):
    path = request.getfixturevalue(fixture)
    adapter = _soft_prompt_adapter(path, tmp_path / "adapter", causal, kind)
    loaded = load_model(str(path), device="cpu")
    before = first_token_states(loaded, prompts, batch_size=3)
    adapted = with_adapter(loaded, str(adapter))
    after = first_token_states(adapted, prompts, batch_size=3)
    assert adapted.peft == str(adapter)
    # Every row moves, by much more than float noise (tiny Llama states are ~0.03 in size).
    moved = np.linalg.norm(after - before, axis=1) / np.linalg.norm(before, axis=1)
    assert moved.min() > 0.01, moved
    # Batched with the adapter = one by one with the adapter (padding is still handled).
    np.testing.assert_allclose(first_token_states(adapted, prompts, batch_size=1), after, atol=1e-5)
    if causal:  # = the plain PEFT forward pass, read at the last position (after any virtual tokens)
        for prompt, vector in zip(prompts, after):
            enc = adapted.tokenizer(prompt.rstrip(), return_tensors="pt")
            with torch.no_grad():
                hand = adapted.model(**enc, output_hidden_states=True).hidden_states[-2][0, -1].numpy()
            np.testing.assert_allclose(vector, hand, atol=1e-5)


def test_extract_rows_cover_every_task_on_the_same_examples(tiny_t5, data_dir):
    tasks = resolve_tasks(["mmlu_obs_p3_03", "mmlu_unobs_07", "bbl_hindu_knowledge_obs_p3_01",
                           "bbl_hindu_knowledge_unobs_01"])
    loaded = load_model(str(tiny_t5), device="cpu")
    reps = extract(loaded, tasks, ExtractConfig(n_examples=2, seed=3, batch_size=4, progress=False))
    assert reps.vectors.shape == (8, 32)
    assert reps.sources == ["mmlu", "hindu_knowledge"]
    for source in reps.sources:
        names, doc_ids, grid = reps.grid(source)
        assert len(names) == 2 and len(doc_ids) == 2 and grid.shape == (2, 2, 32)
    assert reps.meta["layer"] == -2 and reps.meta["architecture"] == "seq2seq"
    # Seeded: the same seed samples the same examples, another seed others.
    rows_again, _ = build_rows(tasks, 2, 3)
    assert rows_again == reps.rows
    other, _ = build_rows(tasks, 2, 4)
    assert {r.doc_id for r in other} != {r.doc_id for r in reps.rows}


def test_bad_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(AnalysisError, match="--model .*cannot load"):
        load_model(str(tmp_path / "nope"), device="cpu")


def test_bad_adapter_path_is_a_clear_error(tiny_t5, tmp_path):
    loaded = load_model(str(tiny_t5), device="cpu")
    with pytest.raises(AnalysisError, match="--peft .*cannot load the adapter"):
        with_adapter(loaded, str(tmp_path / "no_adapter"))
