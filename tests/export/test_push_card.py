"""push against a local recording HTTP server (the hub is unreachable here), and the model card's contents.

What the push test proves: with the token only in ``HF_TOKEN``, ``rerank-align push`` sends it as a Bearer header
to the endpoint in ``HF_ENDPOINT``, calls create-repo with the private flag and the repo id, creates the branch for
``--revision``, commits every file of the folder (contents byte-identical, hidden files left out) with the given
message to that revision, and never prints the token or writes it into the folder. What it does not prove: that
the real Hugging Face Hub accepts these requests — the fake server answers the documented JSON shapes, every file
is declared "regular" (so the LFS / Xet upload path for large files is not exercised), and no network or auth
failure handling beyond one line is tested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rerank_align.errors import RerankAlignError
from rerank_align.export import push as push_mod
from rerank_align.export.card import write_card
from rerank_align.scoring.contract import ScoringContract

TOKEN = "hf_testTOKENxyz0123456789abcdef"


class _Hub(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def log_message(self, *a):  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, obj: dict, code: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self._body()
        self.requests.append(
            {"method": "POST", "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if self.path == "/api/repos/create":
            req = json.loads(body)
            host = f"http://{self.headers.get('Host')}"
            return self._send({"url": f"{host}/{req.get('organization')}/{req['name']}"})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._send(
                {
                    "files": [
                        {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                    ]
                }
            )
        if "/commit/" in self.path:
            host = f"http://{self.headers.get('Host')}"
            return self._send({"commitUrl": f"{host}/me/tiny/commit/{'a' * 40}", "commitOid": "a" * 40})
        if self.path == "/api/validate-yaml":  # the hub checks the card's YAML header before committing
            return self._send({"errors": [], "warnings": []})
        if "/branch/" in self.path:
            return self._send({})
        return self._send({"error": "unexpected"}, 404)

    def do_GET(self):
        self.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
        return self._send({"error": "not found"}, 404)


@pytest.fixture
def fake_hub():
    _Hub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    server.timeout = 5
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    stopper = threading.Timer(60, server.shutdown)  # bounded even if the test hangs
    stopper.daemon = True
    stopper.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Hub.requests
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()


def _model_folder(tmp_path: Path, tiny_bert: Path) -> Path:
    from rerank_align.scoring import Reranker

    out = tmp_path / "model"
    Reranker.from_base(str(tiny_bert)).save_pretrained(out)
    write_card(
        out,
        contract=ScoringContract.load(out),
        source={"operation": "save"},
        results=None,
        recipe=None,
        data_files=None,
    )
    (out / ".hidden").write_text("never uploaded")
    return out


def test_push_dry_run_lists_files(tmp_path, tiny_bert, capsys):
    folder = _model_folder(tmp_path, tiny_bert)
    assert push_mod.main([str(folder), "--repo-id", "me/tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would upload" in out and "reranker.json" in out and "README.md" in out and ".hidden" not in out


def test_push_to_local_server(tmp_path, tiny_bert, fake_hub, monkeypatch, capsys):
    import huggingface_hub.constants as hc

    endpoint, requests = fake_hub
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    folder = _model_folder(tmp_path, tiny_bert)
    rc = push_mod.main(
        [str(folder), "--repo-id", "me/tiny", "--private", "--revision", "v1", "--message", "first push"]
    )
    assert rc == 0
    printed = capsys.readouterr()
    assert TOKEN not in printed.out + printed.err
    assert all(TOKEN.encode() not in f.read_bytes() for f in folder.rglob("*") if f.is_file())
    assert requests and all(r["auth"] == f"Bearer {TOKEN}" for r in requests)
    create = json.loads(next(r for r in requests if r["path"] == "/api/repos/create")["body"])
    assert (
        create["name"] == "tiny"
        and create["organization"] == "me"
        and create.get("visibility", "private" if create.get("private") else "public") == "private"
    )
    assert any(r["path"] == "/api/models/me/tiny/branch/v1" for r in requests)
    commit = next(r for r in requests if r["path"] == "/api/models/me/tiny/commit/v1")
    lines = [json.loads(x) for x in commit["body"].decode().splitlines() if x.strip()]
    assert lines[0]["key"] == "header" and lines[0]["value"]["summary"] == "first push"
    sent = {x["value"]["path"]: base64.b64decode(x["value"]["content"]) for x in lines if x["key"] == "file"}
    local = {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")}
    assert set(sent) == set(local)
    assert all(hashlib.sha256(sent[k]).digest() == hashlib.sha256(local[k]).digest() for k in local)


def test_push_refuses_without_token_or_card(tmp_path, tiny_bert, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    folder = _model_folder(tmp_path, tiny_bert)
    with pytest.raises(RerankAlignError, match="no Hugging Face token"):
        push_mod.push(folder, "me/tiny")
    (folder / "README.md").unlink()
    with pytest.raises(RerankAlignError, match="README.md"):
        push_mod.push(folder, "me/tiny", dry_run=True)


def test_card_sections_and_manifest(lora_yesno, tmp_path):
    from rerank_align.export.merge import merge

    data = tmp_path / "train.jsonl"
    data.write_text('{"query": "q", "positives": ["a"], "negatives": ["b"]}\n')
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "format": "rerank_align.eval/1",
                "suite": {"name": "tiny-suite"},
                "created": "2026-11-30",
                "git": {"commit": "abc"},
                "metrics": ["nDCG@10", "RR@10"],
                "collections": {
                    "scifact": {
                        "n_queries": 50,
                        "depth": 100,
                        "metrics": {
                            "bm25": {"nDCG@10": 0.61, "RR@10": 0.55},
                            "ours": {"nDCG@10": 0.7, "RR@10": 0.66},
                        },
                    }
                },
            }
        )
    )
    out = tmp_path / "merged"
    from .conftest import QLORA_RECIPE

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(QLORA_RECIPE.replace("load_in_4bit: true", "load_in_4bit: false"))
    merge(lora_yesno, out, results=str(results), data_files=[str(data)], recipe=str(recipe))
    card = (out / "README.md").read_text()
    for section in (
        "## Base model",
        "## Method and recipe",
        "## Training data",
        "## Evaluation",
        "## Scoring contract",
        "## Usage with plain transformers",
        "## Reproducibility manifest",
    ):
        assert section in card
    assert "| ours | 0.7000 | 0.6600 |" in card
    assert "score = z_yes - z_no" in card  # FORMULA_TEXT
    assert hashlib.sha256(data.read_bytes()).hexdigest() in card
    assert hashlib.sha256(recipe.read_bytes()).hexdigest() in card
    man = json.loads(card.split("## Reproducibility manifest\n\n```json\n")[1].split("```")[0])
    assert man["versions"]["transformers"] and man["git"]["commit"]
    assert man["reranker_json_sha256"] == hashlib.sha256((out / "reranker.json").read_bytes()).hexdigest()
