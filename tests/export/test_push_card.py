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


def _commits(requests) -> list[dict]:
    """Each commit sent to the fake hub: {path in repo: bytes}."""
    out = []
    for r in requests:
        if r["method"] == "POST" and "/commit/" in r["path"]:
            lines = [json.loads(x) for x in r["body"].decode().splitlines() if x.strip()]
            out.append(
                {
                    x["value"]["path"]: base64.b64decode(x["value"]["content"])
                    for x in lines
                    if x["key"] == "file"
                }
            )
    return out


TRAINING_STATE = (
    "optimizer",
    "scheduler",
    "rng_state",
    "training_args.bin",
    "trainer_state.json",
    "checkpoint-",
)


def test_trainer_push_to_hub_sends_our_card_and_the_model_only(tiny_bert, tmp_path, fake_hub, monkeypatch):
    """training.push_to_hub: every commit (each save and the end of training) carries reranker.json and
    rerank_align's card, never training state; the repository is private; the local card is ours too."""
    import huggingface_hub.constants as hc

    from rerank_align import train
    from rerank_align.config import parse_recipe
    from rerank_align_testing.synthetic import make_task, write_beir

    endpoint, requests = fake_hub
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    task = write_beir(make_task(n_train=6, n_test=3, n_candidates=6), tmp_path / "task")
    out = tmp_path / "run"
    recipe = {
        "model": {"name_or_path": str(tiny_bert), "kind": "head", "max_length": 64},
        "data": {
            "beir": str(task),
            "split": "train",
            "run": str(task / "first_stage.run"),
            "num_negatives": 3,
        },
        "method": {"loss": "infonce", "group_size": 4},
        "training": {
            "output_dir": str(out),
            "max_steps": 2,
            "save_strategy": "steps",
            "save_steps": 1,
            "disable_tqdm": True,
            "push_to_hub": True,
            "hub_model_id": "me/tiny-run",
            "hub_strategy": "every_save",
        },
    }
    train.run(parse_recipe(recipe))
    create = [json.loads(r["body"]) for r in requests if r["path"] == "/api/repos/create"]
    assert create and all(c.get("private") is True or c.get("visibility") == "private" for c in create)
    commits = _commits(requests)
    assert len(commits) >= 3  # two checkpoint saves and the final model
    for files in commits:
        assert {"reranker.json", "README.md", "model.safetensors"} <= set(files)
        assert not [f for f in files if any(t in f for t in TRAINING_STATE)], sorted(files)
        card = files["README.md"].decode()
        assert "## Scoring contract" in card and "unknown dataset" not in card
        assert "pipeline_tag: text-ranking" in card
    local = (out / "README.md").read_text()
    assert "## Scoring contract" in local and "unknown dataset" not in local
    assert (out / "training_args.bin").is_file()  # still written locally: only the push leaves it out


def test_trainer_push_needs_an_owner_in_hub_model_id(tiny_bert, tmp_path):
    from rerank_align import train
    from rerank_align.config import parse_recipe

    recipe = {
        "model": {"name_or_path": str(tiny_bert), "kind": "head"},
        "data": {"train_file": str(tmp_path / "x.jsonl")},
        "method": {"loss": "infonce", "group_size": 2},
        "training": {"output_dir": str(tmp_path / "o"), "push_to_hub": True, "hub_model_id": "no-owner"},
    }
    (tmp_path / "x.jsonl").write_text('{"query": "q", "positives": ["a"], "negatives": ["b"]}\n')
    with pytest.raises(RerankAlignError, match="training.hub_model_id"):
        train.run(parse_recipe(recipe))


def test_push_dry_run_of_a_training_folder_lists_the_final_model_only(tmp_path, tiny_bert, capsys):
    folder = _model_folder(tmp_path, tiny_bert)
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "trainer_state.json"):
        (folder / name).write_bytes(b"x")
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "model.safetensors").write_bytes(b"x")
    (folder / "stats.pkl").write_bytes(b"x")
    plan = push_mod.push(folder, "me/tiny", dry_run=True)
    sent = {f for f, _ in plan["files"]}
    assert plan["private"] is True
    assert {"reranker.json", "README.md", "model.safetensors", "config.json"} <= sent
    assert not [f for f in sent if any(t in f for t in TRAINING_STATE) or f.endswith(".pkl")]
    assert {f for f, _ in plan["left_out"]} == {
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "training_args.bin",
        "trainer_state.json",
        "checkpoint-2/model.safetensors",
        "stats.pkl",
    }
    everything = push_mod.push(folder, "me/tiny", dry_run=True, include_training_state=True, private=False)
    assert {f for f, _ in everything["files"]} == sent | {f for f, _ in plan["left_out"]}
    assert everything["private"] is False
    assert push_mod.main([str(folder), "--repo-id", "me/tiny", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "(private)" in printed and "optimizer.pt  (training state)" in printed


def test_card_metadata_is_what_sentence_transformers_writes_for_rerankers(tiny_bert, tmp_path):
    """pipeline_tag text-ranking, library_name of the loader, base_model, tags, license, datasets and model-index,
    parsed back by huggingface_hub; an encoder export's card names what it is."""
    from huggingface_hub import ModelCard

    from rerank_align.export.export import to_cross_encoder

    folder = _model_folder(tmp_path, tiny_bert)
    rj = json.loads((folder / "reranker.json").read_text())
    rj["base_model"] = "cross-encoder/ms-marco-MiniLM-L6-v2"
    (folder / "reranker.json").write_text(json.dumps(rj))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "method: {name: score, loss: infonce}\ndata: {train_file: sentence-transformers/msmarco}\n"
    )
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "metrics": ["nDCG@10"],
                "collections": {"scifact": {"metrics": {"bm25": {"nDCG@10": 0.6}, "ours": {"nDCG@10": 0.7}}}},
            }
        )
    )
    to_cross_encoder(folder, tmp_path / "ce")
    write_card(
        tmp_path / "ce",
        contract=ScoringContract.load(tmp_path / "ce"),
        source={"operation": "export", "to": "cross-encoder", "source": str(folder)},
        results=str(results),
        recipe=recipe,
        data_files=None,
        results_system="ours",
        license="apache-2.0",
    )
    card = ModelCard.load(tmp_path / "ce" / "README.md")
    d = card.data
    assert d.pipeline_tag == "text-ranking" and d.library_name == "sentence-transformers"
    assert d.base_model == "cross-encoder/ms-marco-MiniLM-L6-v2" and d.license == "apache-2.0"
    assert d.datasets == ["sentence-transformers/msmarco"]
    assert {"sentence-transformers", "cross-encoder", "reranker", "method:score", "loss:infonce"} <= set(
        d.tags
    )
    (ev,) = d.eval_results
    assert (ev.dataset_name, ev.metric_name, ev.metric_value) == ("scifact", "nDCG@10", 0.7)
    assert "None yes/no" not in card.text and "copied for sentence-transformers" in card.text
    # a yes/no folder without sentence-transformers files is a transformers model
    from rerank_align.export.card import library_for

    assert library_for(tmp_path, ScoringContract.load(tmp_path / "ce"))[0] == "transformers"
