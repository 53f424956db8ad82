"""``instrobust-paraphrase``: k paraphrases of each sampled reference instruction.

    OPENAI_API_KEY=... instrobust-paraphrase --source tatsu-lab/alpaca --n_examples 1000 \\
        --paraphrases paraphrases.jsonl --backend openai --model gpt-4o-mini

The model is any OpenAI-compatible chat endpoint (``--base_url`` or ``$OPENAI_BASE_URL``, key
from ``$OPENAI_API_KEY`` or the variable ``--api_key_env`` names) or a local transformers model
(``--backend transformers --model PATH``). Results are appended to the paraphrase file, keyed by
instruction hash, as each instruction finishes: a rerun asks only for what is missing. Empty,
refused, overlong, reference-identical and duplicate candidates are dropped and counted.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field

from instrobust_train.config import DataConfig
from instrobust_train.errors import ParaphraseError, TrainConfigError, exit_status
from instrobust_train.paraphrase_cache import append_record, instruction_key, read_paraphrase_records

log = logging.getLogger("instrobust_train.paraphrase")

DEFAULT_PROMPTS = [
    "Paraphrase the following task instruction. Keep its meaning exactly but change the wording. "
    "Reply with the paraphrased instruction only.\n\nInstruction: {instruction}",
    "Rewrite this instruction so that someone following it would do exactly the same task, using "
    "different words. Output only the rewritten instruction.\n\n{instruction}",
    "Here is an instruction for a task:\n{instruction}\n\nWrite another way to give the same "
    "instruction. Answer with the new instruction only.",
]
DEFAULT_SYSTEM_PROMPT = "You rewrite task instructions without changing what they ask for."
BACKENDS = ("openai", "transformers")
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


@dataclass
class ParaphraseConfig:
    """How paraphrases are asked for (the paper: 3 prompts, temperature 0.5, top 3 candidates)."""

    backend: str = field(default="openai", metadata={"help": f"One of {', '.join(BACKENDS)}."})
    model: str = field(default="gpt-3.5-turbo", metadata={"help": "Endpoint model name, or local model path/id."})
    num_paraphrases: int = field(default=3, metadata={"help": "k: paraphrases kept per instruction."})
    temperature: float = field(default=0.5)
    prompts: list[str] = field(
        default_factory=lambda: list(DEFAULT_PROMPTS),
        metadata={"help": "Prompt templates, each with an {instruction} placeholder; used in turn."},
    )
    system_prompt: str = field(default=DEFAULT_SYSTEM_PROMPT)
    candidates_per_request: int = field(default=1, metadata={"help": "Completions asked per request (n)."})
    max_requests: int | None = field(
        default=None, metadata={"help": "Give up on an instruction after this many requests (default 2*k)."}
    )
    max_new_tokens: int = field(default=128)
    base_url: str | None = field(default=None, metadata={"help": f"Default: $OPENAI_BASE_URL or {OPENAI_DEFAULT_URL}."})
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the key."})
    request_timeout: float = field(default=60.0)
    max_retries: int = field(default=3, metadata={"help": "Retries of a request on 429/5xx/connection errors."})
    seed: int = field(default=0, metadata={"help": "Sampling seed of the transformers backend."})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise TrainConfigError(f"--backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.num_paraphrases < 1:
            raise TrainConfigError(f"--num_paraphrases must be >= 1, got {self.num_paraphrases}")
        bad = [p for p in self.prompts if "{instruction}" not in p]
        if not self.prompts or bad:
            raise TrainConfigError(f"every --prompts template needs an {{instruction}} placeholder: {bad[:1] or 'none given'}")
        if self.max_requests is None:
            self.max_requests = 2 * self.num_paraphrases


# ---- backends ---------------------------------------------------------------------------------
class OpenAIChatBackend:
    """POST /chat/completions of an OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...)."""

    def __init__(self, cfg: ParaphraseConfig):
        self.cfg = cfg
        self.url = (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_URL).rstrip("/")
        self.key = os.environ.get(cfg.api_key_env)
        if not self.key and self.url == OPENAI_DEFAULT_URL:
            raise ParaphraseError(f"set ${cfg.api_key_env} to use {OPENAI_DEFAULT_URL} (or pass --base_url)")
        self.requests = 0

    def complete(self, messages: list[dict], n: int) -> list[str]:
        body = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "n": n, "max_tokens": self.cfg.max_new_tokens}
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        url = f"{self.url}/chat/completions"
        for attempt in range(self.cfg.max_retries + 1):
            request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.request_timeout) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                if exc.code not in (429, 500, 502, 503, 504) or attempt == self.cfg.max_retries:
                    raise ParaphraseError(f"{url}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.cfg.max_retries:
                    raise ParaphraseError(f"{url}: {getattr(exc, 'reason', exc)}") from None
            except json.JSONDecodeError:
                raise ParaphraseError(f"{url}: the response is not JSON") from None
            time.sleep(0.5 * 2**attempt)
        try:
            return [choice["message"]["content"] or "" for choice in payload["choices"]]
        except (KeyError, TypeError):
            raise ParaphraseError(f"{url}: unexpected response (no choices[].message.content): {str(payload)[:300]}") from None


class TransformersBackend:
    """A local seq2seq or causal model; chat template when the tokenizer has one."""

    def __init__(self, cfg: ParaphraseConfig):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        self.cfg, self.torch = cfg, torch
        try:
            config = AutoConfig.from_pretrained(cfg.model)
        except Exception as exc:
            raise ParaphraseError(f"--model {cfg.model!r}: cannot load ({type(exc).__name__}: {exc})") from None
        self.is_encoder_decoder = bool(config.is_encoder_decoder)
        auto = AutoModelForSeq2SeqLM if self.is_encoder_decoder else AutoModelForCausalLM
        self.model = auto.from_pretrained(cfg.model).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.requests = 0

    def _text(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] for m in messages)

    def complete(self, messages: list[dict], n: int) -> list[str]:
        self.requests += 1
        enc = self.tokenizer(self._text(messages), return_tensors="pt")
        sample = self.cfg.temperature > 0
        kwargs = {"do_sample": sample, "num_return_sequences": n, "max_new_tokens": self.cfg.max_new_tokens,
                  "pad_token_id": self.tokenizer.eos_token_id if self.tokenizer.pad_token_id is None
                  else self.tokenizer.pad_token_id}
        if sample:
            kwargs["temperature"] = self.cfg.temperature
        else:
            kwargs["num_beams"] = n  # greedy gives one answer: take the n best beams instead
        with self.torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        if not self.is_encoder_decoder:
            out = out[:, enc["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)


def make_backend(cfg: ParaphraseConfig):
    return OpenAIChatBackend(cfg) if cfg.backend == "openai" else TransformersBackend(cfg)


# ---- cleaning and filtering -------------------------------------------------------------------
_LABEL = re.compile(
    r"^\s*(?:\d+[.)]\s*|[-*]\s+)?(?:(?:paraphrased|rewritten|new|alternative)\s+instruction|paraphrase|instruction)\s*[:\-]\s*",
    re.IGNORECASE,
)
_REFUSAL = re.compile(r"^(?:i'?m sorry|i am sorry|i cannot|i can't|as an ai)\b", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text.lower()).split())


def clean_candidate(text: str, reference: str) -> str:
    """Strip what models wrap around a paraphrase: labels, numbering, quotes, extra lines."""
    text = (text or "").strip()
    if "\n" not in reference.strip():  # a one-line instruction gets a one-line paraphrase
        text = next((line for line in text.splitlines() if line.strip()), "")
    text = _LABEL.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def rejection_reason(candidate: str, reference: str, kept: list[str]) -> str | None:
    """Why a cleaned candidate is unusable, or None if it is kept."""
    if not candidate:
        return "empty"
    if _REFUSAL.match(candidate):
        return "refusal"
    if len(candidate) > 4 * len(reference) + 40:
        return "too_long"
    if _norm(candidate) == _norm(reference):
        return "same_as_reference"
    if any(_norm(candidate) == _norm(k) for k in kept):
        return "duplicate"
    return None


def paraphrase_instruction(instruction: str, backend, cfg: ParaphraseConfig) -> tuple[list[str], Counter]:
    """Up to k paraphrases of one instruction, cycling through the prompt templates."""
    kept: list[str] = []
    rejected: Counter = Counter()
    for request in range(cfg.max_requests):
        if len(kept) >= cfg.num_paraphrases:
            break
        prompt = cfg.prompts[request % len(cfg.prompts)].replace("{instruction}", instruction)
        messages = [{"role": "system", "content": cfg.system_prompt}, {"role": "user", "content": prompt}]
        for raw in backend.complete(messages, cfg.candidates_per_request):
            candidate = clean_candidate(raw, instruction)
            reason = rejection_reason(candidate, instruction, kept)
            if reason:
                rejected[reason] += 1
            elif len(kept) < cfg.num_paraphrases:
                kept.append(candidate)
    return kept, rejected


def paraphrase_file(instructions: list[str], path: str, cfg: ParaphraseConfig, backend=None) -> dict:
    """Paraphrase every instruction not yet in ``path``; return run counts (also logged)."""
    cached = read_paraphrase_records(path)
    todo, seen = [], set(cached)
    for ins in instructions:
        key = instruction_key(ins)
        if key not in seen:
            seen.add(key)
            todo.append(ins)
    stats = {"instructions": len({instruction_key(i) for i in instructions}), "cached": 0, "generated": len(todo),
             "kept": 0, "short": 0, "rejected": Counter()}
    stats["cached"] = stats["instructions"] - len(todo)
    if todo and backend is None:
        backend = make_backend(cfg)
    generator = {k: v for k, v in asdict(cfg).items() if k in ("backend", "model", "temperature", "prompts",
                                                              "system_prompt", "candidates_per_request")}
    for i, ins in enumerate(todo, start=1):
        kept, rejected = paraphrase_instruction(ins, backend, cfg)
        append_record(path, {"instruction": ins, "paraphrases": kept, "generator": generator,
                             "rejected": dict(rejected)})
        stats["kept"] += len(kept)
        stats["short"] += len(kept) < cfg.num_paraphrases
        stats["rejected"].update(rejected)
        if i % 50 == 0 or i == len(todo):
            log.info("paraphrased %d/%d instructions", i, len(todo))
    rejected = ", ".join(f"{k}={v}" for k, v in sorted(stats["rejected"].items())) or "none"
    log.info(
        "%s: %d instructions, %d from cache, %d generated; kept %d paraphrases; %d instructions got fewer "
        "than %d; rejected: %s", path, stats["instructions"], stats["cached"], stats["generated"], stats["kept"],
        stats["short"], cfg.num_paraphrases, rejected,
    )
    stats["rejected"] = dict(stats["rejected"])
    return stats


def main(argv: list[str] | None = None) -> int:
    from transformers import HfArgumentParser

    from instrobust_train.data import load_examples

    package_log = logging.getLogger("instrobust_train")  # data sampling and paraphrase counts
    if not package_log.handlers:
        package_log.addHandler(logging.StreamHandler())
    package_log.setLevel(logging.INFO)

    def command():
        parser = HfArgumentParser((DataConfig, ParaphraseConfig))
        parser.prog = "instrobust-paraphrase"
        data_cfg, cfg = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
        if not data_cfg.paraphrases:
            raise TrainConfigError("--paraphrases (the output JSONL) is required")
        examples = load_examples(data_cfg)
        paraphrase_file([ex.instruction for ex in examples], data_cfg.paraphrases, cfg)

    return exit_status("instrobust-paraphrase", command)


if __name__ == "__main__":
    sys.exit(main())
