"""Serving through llama.cpp: the same answers as the PyTorch path, and PyTorch for the rest.

tests/serving/test_generation.py runs every generation behaviour (stops, candidates,
streaming, mixed adapters) on both engines; this file checks that the two engines agree
token for token, and what happens where llama.cpp cannot serve.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tiny_models import tiny_model_of_architecture
from tunesmith.errors import FailedPrecondition
from tunesmith.serving import ModelServer, Sampling, llama, threads
from tunesmith.serving.batcher import Request, run_batch

from .conftest import TEMPLATE, greedy, make_adapter, need_llama_cpp, torch_server

PROMPTS = ["one two", "hello world the quick brown", "0 1 2 3 4 5 6 7 8 9", "ten"]


@pytest.fixture()
def llama_server(tmp_path) -> ModelServer:
    need_llama_cpp()
    return ModelServer("8", engine="llama.cpp", cache_dir=tmp_path / "serving")


def tiny_config(folder: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder)


def answers(server: ModelServer, base: Path, adapters, sampling: Sampling, template=TEMPLATE):
    return [
        [c.output for c in server.generate(base, template, p, sampling, a).candidates]
        for a in [None, *adapters]
        for p in PROMPTS
    ]


def test_llama_cpp_answers_as_pytorch_does(llama_server, tiny_model_dir, adapters):
    # float32 on both sides: the same arithmetic up to the order of its sums.
    llama_server.weights = "float32"
    reference = torch_server(weights="float32")
    # (12 tokens: the tiny model's random adapters soon reach near-ties, where the order of
    # a sum can choose.)
    assert answers(llama_server, tiny_model_dir, adapters, greedy(12)) == answers(
        reference, tiny_model_dir, adapters, greedy(12)
    )
    # A seeded request samples with tunesmith's sampler from llama.cpp's logits: the same
    # answer each time, different candidates (tunesmith's rule, test_generation.py).
    sampled = Sampling(1.0, 0.95, 40, 2, 16, seed=7)
    ours = answers(llama_server, tiny_model_dir, adapters[:2], sampled)
    assert ours == answers(llama_server, tiny_model_dir, adapters[:2], sampled)
    assert all(len(set(pair)) == 2 for pair in ours)
    # A request's candidates share its prompt's cells in llama.cpp's cache: each sees all of it.
    expected = answers(reference, tiny_model_dir, adapters[:1], greedy(12))
    three = answers(llama_server, tiny_model_dir, adapters[:1], greedy(12, candidate_count=3))
    assert three == [candidates * 3 for candidates in expected]
    assert not llama_server.base(tiny_model_dir).torch_loaded  # no second copy of the base


def test_an_adapter_saved_in_bfloat16_answers_as_on_pytorch(
    llama_server, tiny_model_dir, adapters, tmp_path
):
    """Adapters trained elsewhere are often saved in bfloat16 (which numpy, reading them for
    the GGUF copy, has no type for): the same values reach llama.cpp as PyTorch."""
    import torch
    from safetensors.torch import load_file, save_file

    from tunesmith.engine.export.weights import read_lora

    folder = shutil.copytree(adapters[1], tmp_path / "bf16")
    weights = folder / "adapter_model.safetensors"
    halved = {k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}
    save_file(halved, weights)
    for module, (a, b) in read_lora(folder).layers.items():
        key = f"base_model.model.{module}.lora_%s.weight"
        assert torch.equal(torch.from_numpy(a), halved[key % "A"].float())
        assert torch.equal(torch.from_numpy(b), halved[key % "B"].float())
    llama_server.weights = "float32"
    reference = torch_server(weights="float32")
    ours = answers(llama_server, tiny_model_dir, [folder], greedy(6))  # (before near-ties)
    assert ours == answers(reference, tiny_model_dir, [folder], greedy(6))
    assert ours[len(PROMPTS) :] != ours[: len(PROMPTS)]  # the adapter changes the answers


SERVE_AND_REPORT = """
import json, sys
from pathlib import Path
from tunesmith.serving import ModelServer, Sampling
base, adapter, cache = map(Path, sys.argv[1:4])
server = ModelServer("8", engine="llama.cpp", cache_dir=cache)
greedy = Sampling(temperature=0.0, top_p=1.0, top_k=0, candidate_count=1, max_output_tokens=12)
texts = [server.generate(base, "{input}\\n", "one two", greedy, a).candidates[0].output
         for a in (None, adapter)]
print(json.dumps({"texts": texts, "torch": "torch" in sys.modules}))
"""


def test_a_server_that_llama_cpp_serves_whole_never_loads_torch(
    llama_server, tiny_model_dir, adapters, tmp_path
):
    """torch is 200+ MiB of a server's memory once imported: the base's GGUF copy is made in
    a child process, the tokenizer and adapters are read without it."""
    import json
    import subprocess
    import sys

    fresh = shutil.copytree(tiny_model_dir, tmp_path / "base")  # no GGUF copy of it yet
    args = [sys.executable, "-c", SERVE_AND_REPORT, str(fresh), str(adapters[2])]
    out = subprocess.run([*args, str(tmp_path / "cache")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["torch"] is False
    expected = [
        llama_server.generate(fresh, TEMPLATE, "one two", greedy(12), a).candidates[0].output
        for a in (None, adapters[2])
    ]
    assert report["texts"] == expected


@pytest.mark.parametrize("max_tokens", [10, 100])
def test_requests_to_one_tuned_model_decode_together_as_alone(
    llama_server, tiny_model_dir, adapters, max_tokens
):
    """Requests that arrive together for one tuned model are sequences of one llama.cpp
    batch (each step reads the weights once for all); at 100 tokens each they overflow the
    tiny model's 256-token cache together and are split into batches that fit."""
    jobs = [(adapters[0], p) for p in PROMPTS] + [(None, p) for p in PROMPTS[:2]]
    jobs.insert(2, (adapters[0], "one"))
    sampling = [greedy(max_tokens, candidate_count=2 if i == 1 else 1) for i in range(len(jobs))]
    alone = [
        llama_server.generate(tiny_model_dir, TEMPLATE, p, s, a)
        for (a, p), s in zip(jobs, sampling, strict=True)
    ]
    llama_server.scheduler.close()  # batches are run from here below
    base = llama_server.base(tiny_model_dir)
    requests = [
        Request(base, a, llama_server._encode(base, TEMPLATE.replace("{input}", p)), s)
        for (a, p), s in zip(jobs, sampling, strict=True)
    ]
    run_batch(requests)
    assert [r.stream.result() for r in requests] == alone
    assert not base.torch_loaded


def test_several_tuned_models_decode_at_once_on_a_share_of_the_cores(
    tmp_path, tiny_model_dir, adapters, monkeypatch
):
    """llama.cpp applies one adapter to a whole context: requests to several tuned models
    that arrive together decode at the same time on two contexts over the same weights, each
    on its share of the threads, answering as each does alone; a context that runs out of
    tuned models hands its threads to the one still decoding; and the cache bound (2 tuned
    models here) never frees an adapter that the other context applies."""
    import threading
    import time

    import llama_cpp

    from tunesmith.engine import cores

    need_llama_cpp()
    if cores.usable() < 2:
        pytest.skip("one core: one context decodes every tuned model in turn")
    monkeypatch.setattr(threads, "CHECK_SECONDS", 0.0)
    monkeypatch.setattr(cores, "training_lock", lambda: tmp_path / "training.lock")
    server = ModelServer("2", engine="llama.cpp", cache_dir=tmp_path / "serving")
    jobs = [(a, p, greedy(12)) for a in [None, *adapters] for p in PROMPTS[:2]]
    # One tuned model's long answers beside another's short one.
    skewed = [(adapters[0], p, greedy(40)) for p in PROMPTS] + [(adapters[1], "ten", greedy(6))]
    skewed_run = False
    alone = [server.generate(tiny_model_dir, TEMPLATE, p, s, a) for a, p, s in jobs + skewed]
    server.scheduler.close()  # batches are run from here below
    base = server.base(tiny_model_dir)
    assert base.llama is not None
    steps: list[tuple[int, int, int]] = []  # each decoding step's context, thread, threads
    decode = llama.LlamaModel.decode
    config = tiny_config(tiny_model_dir)
    long, short = (llama.adapter_gguf(a, config, server.cache_dir) for a in adapters[:2])
    long_started = threading.Event()

    def watched(context, appended):
        if context.active == short and skewed_run:  # not before the long answers start
            assert long_started.wait(30)
        out = decode(context, appended)
        steps.append((id(context), threading.get_ident(), context.threads))
        if context.active == long and skewed_run and not long_started.is_set():
            long_started.set()
            for _ in range(3000):  # go on once the short answer is done
                if context.sharing == 1:
                    break
                time.sleep(0.01)
        return out

    monkeypatch.setattr(llama.LlamaModel, "decode", watched)
    free, weights = llama_cpp.llama_adapter_lora_free, base.llama.model._weights
    freed_while_applied: list[Path] = []

    def checked_free(handle):  # called once the adapter has left the loaded ones
        freed_while_applied.extend(
            c.active for c in weights.contexts if c.active and c.active not in weights.adapters
        )
        free(handle)

    monkeypatch.setattr(llama_cpp, "llama_adapter_lora_free", checked_free)

    def ask(some):
        requests = [
            Request(base, a, server._encode(base, TEMPLATE.replace("{input}", p)), s)
            for a, p, s in some
        ]
        run_batch(requests)
        return [r.stream.result() for r in requests]

    half, every = cores.usable() // 2, cores.usable()
    assert ask(jobs) == alone[: len(jobs)]
    assert len({c for c, _, _ in steps}) == 2 and len({t for _, t, _ in steps}) == 2
    assert all((c, half) in {(c, n) for c, _, n in steps} for c in {c for c, _, _ in steps})
    assert not freed_while_applied
    steps.clear()
    skewed_run = True
    assert ask(skewed) == alone[len(jobs) :]
    skewed_run = False
    by_context: dict[int, list[int]] = {}
    for c, _, n in steps:
        by_context.setdefault(c, []).append(n)
    longer = by_context[id(next(c for c in weights.contexts if c.active == long))]
    assert len(by_context) == 2 and longer[0] == half and longer[-1] == every
    # One tuned model alone decodes on every core.
    steps.clear()
    assert ask(jobs[:1]) == alone[:1]
    assert {(id(base.llama.model), every)} == {(c, n) for c, _, n in steps}
    assert not base.torch_loaded


def test_several_tuned_models_decode_in_turn_where_no_second_context_can_be_made(
    llama_server, tiny_model_dir, adapters, monkeypatch, tmp_path
):
    """A second llama.cpp context needs memory for its own KV cache: where llama.cpp cannot
    make one, every tuned model decodes in turn on the first, with the same answers."""
    from tunesmith.engine import cores

    if cores.usable() < 2:
        pytest.skip("one core: one context decodes every tuned model in turn")
    # The lock's file is this test's own: runs elsewhere on the machine stay out of it.
    monkeypatch.setattr(cores, "training_lock", lambda: tmp_path / "training.lock")
    jobs = [(a, p) for a in [None, *adapters] for p in PROMPTS[:2]]
    alone = [llama_server.generate(tiny_model_dir, TEMPLATE, p, greedy(8), a) for a, p in jobs]
    llama_server.scheduler.close()  # batches are run from here below
    base = llama_server.base(tiny_model_dir)
    assert base.llama is not None
    tries: list[int] = []

    def refused(_context):
        tries.append(1)
        raise FailedPrecondition("llama.cpp cannot make a context for base.gguf")

    monkeypatch.setattr(llama.LlamaModel, "beside", refused)
    for _ in "ab":  # asked once, not at every batch
        requests = [
            Request(base, a, llama_server._encode(base, TEMPLATE.replace("{input}", p)), greedy(8))
            for a, p in jobs
        ]
        run_batch(requests)
        assert [r.stream.result() for r in requests] == alone
    assert len(tries) == 1


def test_candidates_that_overflow_the_cache_together_decode_in_turn(
    llama_server, tiny_model_dir, adapters, monkeypatch
):
    """A request whose candidates do not fit the shared cache together stays on llama.cpp:
    they decode in runs that fit, and the answer (seeded: each candidate its own draw) is the
    one they give decoded together, streamed and whole."""
    sampled = Sampling(1.0, 0.95, 40, 4, 20, seed=3)
    together = llama_server.generate(tiny_model_dir, TEMPLATE, "one two", sampled, adapters[0])
    llama_server.scheduler.close()  # runs are made from here below
    base = llama_server.base(tiny_model_dir)
    assert base.llama is not None
    prompt = llama_server._encode(base, TEMPLATE.replace("{input}", "one two"))
    base.llama.model.kv_tokens = len(prompt) + 2 * 20  # the prompt, two answers
    runs: list[int] = []
    decode = base.llama._decode
    monkeypatch.setattr(base.llama, "_decode", lambda c, rows, all: [runs.append(len(rows)),
                                                                    decode(c, rows, all)])  # fmt: skip
    request = Request(base, adapters[0], prompt, sampled)
    run_batch([request])
    events = list(request.stream)
    streamed: dict[int, str] = {}
    for delta in events[:-1]:
        for index, text in delta.texts.items():
            streamed[index] = streamed.get(index, "") + text
    assert runs == [2, 2]
    assert events[-1] == together
    assert [streamed.get(i, "") for i in range(4)] == [c.output for c in together.candidates]
    assert len({c.output for c in together.candidates}) > 1
    assert not base.torch_loaded


def test_llama_cpp_decodes_on_one_thread_while_a_run_trains(
    llama_server, tiny_model_dir, adapters, tmp_path, monkeypatch
):
    """Beside a tuning run, llama.cpp's threads wait at every layer's barrier for a core the
    run holds (decoding falls to a sixth or less, benchmarks/serving_beside_tuning.py): while
    a run trains on this machine it decodes on one thread, then on every core again, giving
    the same answers."""
    from tunesmith.engine import cores, recipe

    if cores.usable() < 2:
        pytest.skip("one core: llama.cpp decodes on one thread anyway")
    monkeypatch.setattr(threads, "CHECK_SECONDS", 0.0)
    # The lock's file is this test's own: runs elsewhere on the machine stay out of it.
    monkeypatch.setattr(cores, "training_lock", lambda: tmp_path / "training.lock")

    def ask():
        answer = llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(12), adapters[0])
        model = llama_server.base(tiny_model_dir).llama
        assert model is not None
        return model.model.threads, answer

    count, before = ask()
    assert count == cores.usable()
    during: list = []
    run = recipe.Recipe(tiny_model_dir, [("1", "2")] * 4, tmp_path / "run", batch_size=2)
    recipe.run(run, lambda _report: during.append(ask()) or True)
    assert during and all(seen == (1, before) for seen in during)
    assert ask() == (cores.usable(), before)


def test_what_llama_cpp_cannot_serve_goes_to_pytorch(llama_server, tiny_model_dir, adapters):
    reference = torch_server()
    expected = reference.generate(tiny_model_dir, TEMPLATE, "one two", greedy(12), adapters[0])
    # A prompt and answer longer than llama.cpp's context.
    llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(4))
    base = llama_server.base(tiny_model_dir)
    assert base.llama is not None and not base.torch_loaded
    base.llama.model.context = 8
    long = llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(12), adapters[0])
    assert base.torch_loaded and long == expected
    # An adapter file llama.cpp will not load (here: its cached GGUF copy is damaged).
    damaged = llama.adapter_gguf(adapters[1], tiny_config(tiny_model_dir), llama_server.cache_dir)
    damaged.write_bytes(b"GGUF but not really")
    expected = reference.generate(tiny_model_dir, TEMPLATE, "one two", greedy(12), adapters[1])
    got = llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(12), adapters[1])
    assert got == expected


@pytest.fixture(scope="module")
def unknown_architecture(tmp_path_factory, tiny_model_dir) -> Path:
    """A Phi-3-shaped model, which the GGUF writer does not know."""
    return tiny_model_of_architecture(tiny_model_dir, tmp_path_factory.mktemp("phi3"), "Phi3")


@pytest.fixture(scope="module")
def more_tokens_than_embeddings(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model with a token added to its tokenizer only: its GGUF copy is written, and
    llama.cpp refuses to load it (the vocabulary and the embedding rows disagree)."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("extra-token") / "model"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens(["<extra>"])
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "model, reason",
    [
        ("unknown_architecture", "architecture 'phi3'"),
        ("more_tokens_than_embeddings", "llama.cpp cannot load|Failed to load"),
    ],
)
def test_a_base_llama_cpp_cannot_take_is_served_by_pytorch(request, tmp_path, model, reason):
    need_llama_cpp()
    folder = request.getfixturevalue(model)
    auto = ModelServer("8", cache_dir=tmp_path / "auto")  # the default engine
    gen = auto.generate(folder, TEMPLATE, "one two", greedy(6))
    assert gen == torch_server().generate(folder, TEMPLATE, "one two", greedy(6))
    base = auto.base(folder)
    assert base.llama is None and base.torch_loaded
    only = ModelServer("8", engine="llama.cpp", cache_dir=tmp_path / "only")
    with pytest.raises(
        FailedPrecondition, match=f"TUNESMITH_SERVING_ENGINE=llama.cpp: .*({reason})"
    ):
        only.generate(folder, TEMPLATE, "one two", greedy(6))


def test_adapters_in_llama_cpp_keep_to_the_cache_bounds(tmp_path, tiny_model_dir, adapters):
    need_llama_cpp()
    size = llama.adapter_gguf(adapters[0], tiny_config(tiny_model_dir), tmp_path).stat().st_size
    for spec, most in (("2", 2), (f"8,{int(size * 2.5)}", 2), ("8", 4)):
        server = ModelServer(spec, engine="llama.cpp", cache_dir=tmp_path)
        first = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(8), adapters[0])
        for a in adapters[1:]:
            server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(8), a)
        loaded = server.base(tiny_model_dir).llama
        assert loaded is not None and len(loaded.model.adapters) == most
        again = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(8), adapters[0])
        assert again == first  # an evicted adapter loads again, with the same answer


def test_copies_of_deleted_adapters_leave_the_cache(llama_server, tiny_model_dir, tmp_path):
    first = make_adapter(tiny_model_dir, tmp_path / "first", seed=11)
    llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(4), first)
    copies = llama_server.cache_dir
    assert len(list(copies.glob("*-lora.gguf"))) == 1
    shutil.rmtree(first)  # the tuned model was deleted
    second = make_adapter(tiny_model_dir, tmp_path / "second", seed=12)
    llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(4), second)
    left = [p.read_text() for p in copies.glob("*.source")]
    assert sorted(Path(p).name for p in left) == sorted([tiny_model_dir.name, "second"])
    assert len(list(copies.glob("*-lora.gguf"))) == 1


def test_engine_setting_is_checked(monkeypatch):
    from tunesmith.settings import get_settings

    monkeypatch.setenv("TUNESMITH_SERVING_ENGINE", "vllm")
    with pytest.raises(ValueError, match="TUNESMITH_SERVING_ENGINE.*auto, llama.cpp, torch"):
        get_settings()
    monkeypatch.setenv("TUNESMITH_SERVING_ENGINE", "torch")
    assert ModelServer.from_settings(get_settings()).engine == "torch"


@pytest.mark.slow
def test_the_packaged_model_answers_alike_on_both_engines(converted_base_models, tmp_path):
    """F16 in llama.cpp against float16 storage in PyTorch, greedy, with the model's own chat
    template, over the base and a tuned-sized adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.engine import base_models
    from tunesmith.settings import DEFAULT_BASE_MODEL

    need_llama_cpp()
    spec = base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL)
    base = base_models.materialize(spec, converted_base_models)
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.02)
    model.save_pretrained(tmp_path / "tuned")
    questions = ["What is the capital of France?", "Count from 1 to 10.", "Name three colours."]
    engines = [
        ModelServer("8", engine=e, cache_dir=tmp_path / "serving") for e in ("llama.cpp", "torch")
    ]
    outputs = [
        [
            s.generate(base, None, q, greedy(32), a).candidates[0].output
            for a in (None, tmp_path / "tuned")
            for q in questions
        ]
        for s in engines
    ]
    assert outputs[0] == outputs[1]
    assert all(len(o.split()) > 3 for o in outputs[0])  # real answers, not empty ones


def test_loading_tuned_models_writes_nothing_to_the_terminal(
    llama_server, tiny_model_dir, adapters, capfd
):
    """llama.cpp's own buffers for a CPU's matrix units (AMX) cannot hold LoRA tensors, and it
    said so on stderr for each one, every time a tuned model loaded (210 lines for one tuned
    packaged base), while holding a second copy of the base's weights there."""
    for adapter in adapters[:2]:
        llama_server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(4), adapter)
    assert "buft" not in capfd.readouterr().err
