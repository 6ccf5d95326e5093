"""Exports of a model tuned on the real packaged base (SmolLM2-135M-Instruct), run by the real
consumers: transformers, peft and llama.cpp (llama-cpp-python, built once from source into a
cache outside the repository: see tests/llama_cpp_wheel.py).

The reference is tunesmith's own serving of the tuned model (``ts.generate_text`` at
temperature 0). Stated tolerances: the merged folder's and the adapter's logits agree within
1e-3 (float32, the same arithmetic in another order); F16 GGUF, the GGUF LoRA over the F16
base, and the chat-template path give the same greedy answers on every prompt the model was
tuned for and on all but one of the others (:func:`_agree`); Q8_0 on at least 80 % of them
(15 of 16 measured).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

import tunesmith as ts

pytestmark = pytest.mark.slow

WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
EXAMPLES = [{"text_input": WORDS[i], "output": WORDS[i + 1]} for i in range(20)]
# Inputs like the examples, and requests of another kind the tuning never saw.
LIKE_EXAMPLES = WORDS[:20:2]
PROMPTS = LIKE_EXAMPLES + [
    "What is the capital of France?",
    "Name a primary color.",
    "Say hello.",
    "What is 2+2?",
    "Translate 'cat' to French.",
    "Finish: the quick brown",
]
MAX_TOKENS = 12
PROMPT = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"  # the registry's


@dataclasses.dataclass
class Tuned:
    name: str
    base_dir: Path
    served: list[str]
    exports: dict


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, converted_base_models):
    import tunesmith.sdk.clients as clients
    from tunesmith.engine import base_models

    home = tmp_path_factory.mktemp("export-home")
    (home / "base-models").symlink_to(converted_base_models, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNESMITH_HOME", str(home))
        mp.setenv("TUNESMITH_WORKER_IDLE_SECONDS", "5")
        for var in ("TUNESMITH_DATABASE_URL", "TUNESMITH_API_ENDPOINT", "TUNESMITH_API_KEY"):
            mp.delenv(var, raising=False)
        clients.configure()
        op = ts.create_tuned_model(
            "models/smollm2-135m-instruct", EXAMPLES, id="counter", epoch_count=3, batch_size=4
        )
        model = op.result(timeout=900)
        assert model.state is ts.TunedModelState.ACTIVE
        served = [
            ts.generate_text(
                model=model.name, prompt=p, temperature=0, max_output_tokens=MAX_TOKENS
            ).result
            for p in PROMPTS
        ]
        out = home / "exports-made-here"
        exports = {
            (fmt, q): ts.export_tuned_model(model.name, fmt, out / f"{fmt}-{q}", quantization=q)
            for fmt, q in [
                ("adapter", None),
                ("merged", None),
                ("gguf", "F16"),
                ("gguf", "Q8_0"),
                ("gguf-lora", "F16"),
            ]
        }
        # Where the converted base lies (the shared cache's folder when setup made one).
        spec = base_models.resolve(model.base_model, model.base_model)
        base_dir = base_models.materialize(spec, home / "base-models")
        yield Tuned(model.name, base_dir, served, exports)
        clients.configure()
        shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def llama_cpp():
    from llama_cpp_wheel import ensure

    ensure()
    import llama_cpp

    return llama_cpp


def _llama(llama_cpp, model: Path, lora: Path | None = None):
    """llama.cpp on ``model``, loaded as tunesmith's engine loads a base: without its extra
    buffer types, whose AMX kernels for Q8_0 kill the test process on an AMX Xeon
    (:func:`tunesmith.serving.llama.without_extra_buffers`); what is checked here is the
    exported file, not those kernels."""
    from tunesmith.serving.llama import without_extra_buffers

    kwargs = {"lora_path": str(lora)} if lora else {}
    low = llama_cpp.llama_cpp  # the module Llama takes its default model parameters from
    defaults = low.llama_model_default_params
    low.llama_model_default_params = lambda: without_extra_buffers(defaults())
    try:
        return llama_cpp.Llama(str(model), n_ctx=512, seed=0, verbose=False, **kwargs)
    finally:
        low.llama_model_default_params = defaults


def _agree(answers: list[str], reference: list[str]) -> None:
    """The same answers on every prompt like the examples, and on all but one of the prompts
    the tuning never saw: there an answer can hang on a near-tie that the order of F16
    arithmetic flips (on an AVX2 EPYC, "Translate 'dog' to Italian." against "... Spanish.")."""
    tuned_for = len(LIKE_EXAMPLES)
    assert answers[:tuned_for] == reference[:tuned_for]
    others = zip(PROMPTS[tuned_for:], answers[tuned_for:], reference[tuned_for:], strict=True)
    differ = [(prompt, a, b) for prompt, a, b in others if a != b]
    assert len(differ) <= 1, differ


def _greedy(llm, prompt: str) -> tuple[list[int], str]:
    """The prompt tokenised as tunesmith does (special tokens parsed, no BOS), then greedy."""
    ids = llm.tokenize(PROMPT.replace("{input}", prompt).encode(), add_bos=False, special=True)
    out: list[int] = []
    for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        if token == llm.token_eos() or len(out) >= MAX_TOKENS:
            break
        out.append(token)
    return ids, llm.detokenize(out).decode("utf-8", errors="replace")


def test_the_tuned_model_answers_like_its_examples(tuned):
    # Without this the comparisons below would prove little.
    assert tuned.served[: len(LIKE_EXAMPLES)] == [WORDS[i + 1] for i in range(0, 20, 2)]


def test_merged_folder_and_adapter_answer_as_tunesmith_serves(tuned):
    import json

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .conftest import hf_greedy

    merged_dir = tuned.exports[("merged", None)].folder
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert hf_greedy(merged, tokenizer, PROMPTS, MAX_TOKENS) == tuned.served

    adapter_dir = tuned.exports[("adapter", None)].folder
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    base = AutoModelForCausalLM.from_pretrained(tuned.base_dir)
    with_adapter = PeftModel.from_pretrained(base, adapter_dir).eval()
    assert hf_greedy(with_adapter, tokenizer, PROMPTS, MAX_TOKENS) == tuned.served
    for prompt in PROMPTS[::3]:
        ids = tokenizer(PROMPT.replace("{input}", prompt), return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            a, b = merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits
        torch.testing.assert_close(a, b, rtol=0, atol=1e-3)


def test_llama_cpp_answers_as_tunesmith_serves(tuned, llama_cpp):
    from transformers import AutoTokenizer

    f16 = _llama(llama_cpp, tuned.exports[("gguf", "F16")].main_file)
    tokenizer = AutoTokenizer.from_pretrained(tuned.exports[("merged", None)].folder)
    answers = []
    for prompt in PROMPTS:
        ids, answer = _greedy(f16, prompt)
        # The base GGUF's own vocabulary keeps <|im_start|> a control token (37 tokens for
        # the pitfall's prompt, not 55): llama.cpp reads the prompt as tunesmith does.
        text = PROMPT.replace("{input}", prompt)
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"], prompt
        answers.append(answer)
    _agree(answers, tuned.served)

    # The chat template inside the GGUF gives the tuned prompt (no default system prompt).
    chat = [
        f16.create_chat_completion(
            messages=[{"role": "user", "content": p}], temperature=0.0, max_tokens=MAX_TOKENS
        )["choices"][0]["message"]["content"]
        for p in PROMPTS
    ]
    _agree(chat, tuned.served)

    q8 = _llama(llama_cpp, tuned.exports[("gguf", "Q8_0")].main_file)
    same = sum(_greedy(q8, p)[1] == s for p, s in zip(PROMPTS, tuned.served, strict=True))
    assert same >= 0.8 * len(PROMPTS), f"Q8_0 agreed on {same} of {len(PROMPTS)}"


def test_gguf_lora_over_the_base_answers_as_the_merged_file(tuned, llama_cpp):
    folder = tuned.exports[("gguf-lora", "F16")].folder
    base = folder / "smollm2-135m-instruct-F16.gguf"
    with_lora = _llama(llama_cpp, base, folder / "counter-lora.gguf")
    merged = _llama(llama_cpp, tuned.exports[("gguf", "F16")].main_file)
    lora_answers = [_greedy(with_lora, p)[1] for p in PROMPTS]
    _agree(lora_answers, [_greedy(merged, p)[1] for p in PROMPTS])
    _agree(lora_answers, tuned.served)
    plain = _llama(llama_cpp, base)  # the base alone answers otherwise: the adapter counts
    assert [_greedy(plain, p)[1] for p in PROMPTS] != lora_answers
    modelfile = (folder / "Modelfile").read_text()
    assert f"FROM ./{base.name}\nADAPTER ./counter-lora.gguf\n" in modelfile


def test_the_packaged_ggufs_metadata_is_kept(tuned):
    import gguf

    from tunesmith.engine import base_models
    from tunesmith.engine.export.gguf_file import read_metadata

    spec = base_models.resolve("models/smollm2-135m-instruct", "models/smollm2-135m-instruct")
    original = read_metadata(base_models.source_gguf(spec, tuned.base_dir.parent))
    exported = read_metadata(tuned.exports[("gguf", "Q8_0")].main_file)
    changed = {k for k, v in original.items() if exported[k].value != v.value}
    # Only what tuning changed: its name, the file type, and the chat template (the registry's
    # prompt leaves out the base template's default system prompt; see templates.py).
    assert changed == {"general.name", "general.file_type", "tokenizer.chat_template"}
    assert exported["general.file_type"].value == int(gguf.LlamaFileType.MOSTLY_Q8_0)
    assert exported["tokenizer.ggml.add_bos_token"].value is False
    modelfile = (tuned.exports[("gguf", "F16")].folder / "Modelfile").read_text()
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n" in modelfile
