"""instrobust-paraphrase against a local OpenAI-wire stub server and a local tiny model."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from instrobust_train.errors import ParaphraseError
from instrobust_train.paraphrase import (
    ParaphraseConfig,
    clean_candidate,
    main as paraphrase_main,
    paraphrase_file,
    rejection_reason,
)
from instrobust_train.paraphrase_cache import instruction_key, read_paraphrase_records

EXAMPLES = Path(__file__).parent / "fixtures" / "train" / "alignment_examples.jsonl"
PROMPT = "Rephrase this instruction: {instruction}"


class _StubChat(BaseHTTPRequestHandler):
    """Speaks /v1/chat/completions as OpenAI does; answers come from a script per instruction."""

    requests: list[dict] = []
    calls: dict[str, int] = {}
    fail_with: int | None = None

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.fail_with:
            return self._send(self.fail_with, {"error": {"message": "model overloaded", "type": "server_error"}})
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        instruction = body["messages"][-1]["content"].split("Rephrase this instruction: ", 1)[1]
        lower = instruction[0].lower() + instruction[1:]
        script = [
            f"Paraphrase: \"Kindly {lower}\"",  # label and quotes to strip
            "",  # empty
            instruction,  # the reference itself
            f"Kindly {lower}",  # duplicate of the first once cleaned
            f"Could you {lower}",
            "I'm sorry, but I cannot help with that.",  # refusal
            f"Your task: {lower}",
        ]
        choices = []
        for _ in range(body.get("n", 1)):
            i = type(self).calls.get(instruction, 0)
            type(self).calls[instruction] = i + 1
            content = script[i % len(script)]
            choices.append({"index": len(choices), "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop"})
        self._send(200, {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": choices, "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def stub_server():
    _StubChat.requests, _StubChat.calls, _StubChat.fail_with = [], {}, None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_openai_endpoint_filters_counts_and_caches(stub_server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STUB_KEY", "sk-test-123")
    out = tmp_path / "para.jsonl"
    argv = ["--source", str(EXAMPLES), "--n_examples", "6", "--sample_seed", "1", "--paraphrases", str(out),
            "--backend", "openai", "--model", "stub-model", "--base_url", stub_server, "--api_key_env", "STUB_KEY",
            "--prompts", PROMPT, "--max_requests", "7"]
    with caplog.at_level(logging.INFO, logger="instrobust_train"):
        assert paraphrase_main(argv) == 0
    records = read_paraphrase_records(out)
    instructions = {json.loads(line)["instruction"] for line in EXAMPLES.read_text().splitlines()}
    assert records and all(r["instruction"] in instructions for r in records.values())
    for rec in records.values():
        lower = rec["instruction"][0].lower() + rec["instruction"][1:]
        assert rec["paraphrases"] == [f"Kindly {lower}", f"Could you {lower}", f"Your task: {lower}"]
        assert rec["rejected"] == {"empty": 1, "same_as_reference": 1, "duplicate": 1, "refusal": 1}
    first = _StubChat.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test-123"
    assert first["body"]["model"] == "stub-model" and first["body"]["temperature"] == 0.5
    assert [m["role"] for m in first["body"]["messages"]] == ["system", "user"]
    assert len(_StubChat.requests) == 7 * len(records)
    n = len(records)
    assert f"kept {3 * n} paraphrases" in caplog.text
    assert f"rejected: duplicate={n}, empty={n}, refusal={n}, same_as_reference={n}" in caplog.text

    # A rerun finds everything in the file and asks the endpoint nothing.
    before = len(_StubChat.requests)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="instrobust_train"):
        assert paraphrase_main(argv) == 0
    assert len(_StubChat.requests) == before
    assert f"{n} from cache, 0 generated" in caplog.text
    assert len(out.read_text().splitlines()) == n


def test_endpoint_errors_are_reported(stub_server, tmp_path, capsys):
    _StubChat.fail_with = 400
    cfg = ParaphraseConfig(model="m", base_url=stub_server, prompts=[PROMPT], max_retries=0)
    with pytest.raises(ParaphraseError, match=r"/chat/completions: HTTP 400: .*model overloaded"):
        paraphrase_file(["Sort the list."], str(tmp_path / "p.jsonl"), cfg)
    _StubChat.fail_with = 503  # retried, then reported
    cfg = ParaphraseConfig(model="m", base_url=stub_server, prompts=[PROMPT], max_retries=1)
    before = len(_StubChat.requests)
    with pytest.raises(ParaphraseError, match="HTTP 503"):
        paraphrase_file(["Sort the list."], str(tmp_path / "p.jsonl"), cfg)
    assert len(_StubChat.requests) - before == 2


def test_local_transformers_model(tiny_t5, tmp_path):
    cfg = ParaphraseConfig(backend="transformers", model=str(tiny_t5), num_paraphrases=2, temperature=1.0,
                           max_new_tokens=8, max_requests=4, prompts=[PROMPT])
    out = tmp_path / "p.jsonl"
    stats = paraphrase_file(["Give the capital city of the country."], str(out), cfg)
    rec = read_paraphrase_records(out)[instruction_key("Give the capital city of the country.")]
    # A random tiny model writes noise, but every kept string passed the filter and the counts add up.
    assert stats["generated"] == 1 and len(rec["paraphrases"]) <= 2
    assert len(rec["paraphrases"]) + sum(rec["rejected"].values()) >= 2
    assert all(p.strip() and p != "Give the capital city of the country." for p in rec["paraphrases"])
    assert rec["generator"]["backend"] == "transformers"


def test_cleaning_and_rejection_rules():
    ref = "Give the capital city of the country."
    assert clean_candidate('1. Paraphrased instruction: "Name the capital of the country."\nExtra', ref) == \
        "Name the capital of the country."
    assert rejection_reason("give the capital city of the country", ref, []) == "same_as_reference"
    assert rejection_reason("Name the capital.", ref, ["name the capital"]) == "duplicate"
    assert rejection_reason("x" * 400, ref, []) == "too_long"
    assert rejection_reason("As an AI, I won't.", ref, []) == "refusal"
    assert rejection_reason("Name the capital.", ref, []) is None
    with pytest.raises(Exception, match=r"\{instruction\} placeholder"):
        ParaphraseConfig(prompts=["Paraphrase this."])
