"""Which activations each soft prompt type touches, on tiny real T5 / Llama models (issue 17).

T5 prefix tuning (PEFT 0.21) leaves the encoder alone; ``p_tuning`` (the ``auto`` choice for
encoder-decoder models) puts MLP-made virtual tokens in front of the encoder input, so the
encoding of the instruction itself changes.
"""
from __future__ import annotations

import pytest
import torch
from peft import get_peft_model

from instrobust_train.config import ModelConfig, SoftPromptConfig
from instrobust_train.errors import TrainConfigError
from instrobust_train.model import load_base, soft_prompt_peft_config

N_VIRTUAL = 4
TEXT = "Give the capital city of the country.\n\nJapan"


def _peft_model(base, peft_type: str):
    model, tok = load_base(ModelConfig(base=str(base)))
    config = soft_prompt_peft_config(model, SoftPromptConfig(peft_type=peft_type, num_virtual_tokens=N_VIRTUAL,
                                                             encoder_hidden_size=16))
    torch.manual_seed(0)
    return get_peft_model(model, config).eval(), tok


class _Capture:
    """Records the first tensor output (or input) of modules during one forward."""

    def __init__(self, modules: dict, inputs: bool = False):
        self.seen: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(name, inputs)) for name, m in modules.items()]

    def _hook(self, name, inputs):
        def hook(module, args, out):  # returns None: the forward is untouched
            value = args[0] if inputs else (out[0] if isinstance(out, tuple) else getattr(out, "last_hidden_state", out))
            self.seen[name] = value.detach().clone()
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _t5_activations(peft_model, tok) -> tuple[dict, dict]:
    """(with adapter, without) encoder output, first cross-attention key input, decoder output."""
    base = peft_model.get_base_model()
    modules = {"encoder": base.encoder, "decoder": base.decoder}
    enc = tok([TEXT], return_tensors="pt")
    runs = []
    for adapter in (True, False):
        cap = _Capture(modules)
        keys = _Capture({"cross_k": base.decoder.block[0].layer[1].EncDecAttention.k}, inputs=True)
        with torch.no_grad():
            if adapter:
                peft_model(**enc, decoder_input_ids=torch.zeros(1, 2, dtype=torch.long))
            else:
                with peft_model.disable_adapter():
                    peft_model(**enc, decoder_input_ids=torch.zeros(1, 2, dtype=torch.long))
        cap.close(), keys.close()
        runs.append({**cap.seen, **keys.seen})
    return runs[0], runs[1]


def test_t5_prefix_reaches_only_the_decoder_self_attention(tiny_t5):
    with_prefix, plain = _t5_activations(*_peft_model(tiny_t5, "prefix"))
    assert torch.equal(with_prefix["encoder"], plain["encoder"])  # bit-identical encoding of the instruction
    assert torch.equal(with_prefix["cross_k"], plain["cross_k"])  # cross-attention reads the plain encoder output
    assert (with_prefix["decoder"] - plain["decoder"]).abs().max() > 1e-3  # the decoder's self-attention moved


@pytest.mark.parametrize("peft_type", ["p_tuning", "prompt", "auto"])
def test_t5_p_tuning_changes_the_encoder_output(peft_type, tiny_t5):
    with_prompt, plain = _t5_activations(*_peft_model(tiny_t5, peft_type))
    length = plain["encoder"].shape[1]
    assert with_prompt["encoder"].shape[1] == length + N_VIRTUAL  # virtual tokens lead the encoder input
    instruction = with_prompt["encoder"][:, N_VIRTUAL:]
    assert (instruction - plain["encoder"]).abs().max() > 1e-3  # every instruction token is encoded differently
    assert ((instruction - plain["encoder"]).abs().amax(-1) > 1e-6).all()
    assert with_prompt["cross_k"].shape[1] == length + N_VIRTUAL  # the decoder attends to the soft prompt too
    assert (with_prompt["decoder"] - plain["decoder"]).abs().max() > 1e-3


@pytest.mark.parametrize("peft_type", ["prefix", "p_tuning"])
def test_llama_soft_prompts_reach_every_layer(peft_type, tiny_llama):
    peft_model, tok = _peft_model(tiny_llama, peft_type)
    layers = peft_model.get_base_model().model.layers
    ids = tok([TEXT], return_tensors="pt")
    outs = []
    for adapter in (True, False):
        cap = _Capture({str(i): layer for i, layer in enumerate(layers)})
        with torch.no_grad():
            if adapter:
                peft_model(**ids)
            else:
                with peft_model.disable_adapter():
                    peft_model(**ids)
        cap.close()
        outs.append(cap.seen)
    length = ids["input_ids"].shape[1]
    for i in range(len(layers)):
        mine, plain = outs[0][str(i)][:, -length:], outs[1][str(i)]  # p_tuning's virtual tokens come first
        assert (mine - plain).abs().max() > 1e-4, f"layer {i} untouched by {peft_type}"


def test_auto_picks_p_tuning_for_encoder_decoder_and_prefix_for_causal(tiny_t5, tiny_llama):
    kinds = {}
    for name, base in (("t5", tiny_t5), ("llama", tiny_llama)):
        model, _ = load_base(ModelConfig(base=str(base)))
        config = soft_prompt_peft_config(model, SoftPromptConfig(encoder_hidden_size=16))
        kinds[name] = (str(config.peft_type.value), getattr(config, "encoder_reparameterization_type", None))
    assert kinds == {"t5": ("P_TUNING", "MLP"), "llama": ("PREFIX_TUNING", None)}
    assert SoftPromptConfig().peft_type == "auto"
    with pytest.raises(TrainConfigError, match="p_tuning.*prefix_projection"):
        SoftPromptConfig(prefix_projection=False).resolved_type(is_encoder_decoder=True)
    assert SoftPromptConfig(prefix_projection=False).resolved_type(is_encoder_decoder=False) == "prefix"


def test_help_says_what_each_type_touches():
    from transformers import HfArgumentParser

    from instrobust_train.config import AlignmentConfig, DataConfig

    parser = HfArgumentParser((ModelConfig, DataConfig, SoftPromptConfig, AlignmentConfig))
    (peft_help,) = [a.help for a in parser._actions if a.dest == "peft_type"]
    for phrase in ("auto (p_tuning for encoder-decoder models, prefix for causal LMs)",
                   "p_tuning (MLP-made virtual tokens before the input embeddings: on T5 every encoder layer and, "
                   "via cross-attention, the decoder)",
                   "prefix (key/value prefixes in self-attention: every layer of a causal LM, only the decoder's "
                   "self-attention on T5)"):
        assert phrase in peft_help, peft_help
