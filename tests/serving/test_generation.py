"""Generation parameters, mixed-adapter batches and streaming, on the tiny model."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tunesmith.serving import Delta, Sampling, pytorch, threads
from tunesmith.serving.batcher import Request, run_batch
from tunesmith.types import Generation

from .conftest import TEMPLATE, greedy, torch_server

PROMPTS = ["one two", "hello world the quick brown", "0 1 2 3 4 5 6 7 8 9", "ten"]


def test_greedy_is_repeatable(server, tiny_model_dir, adapters):
    runs = [
        server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), adapters[0]) for _ in "ab"
    ]
    assert runs[0] == runs[1]


def test_max_output_tokens_is_respected(server, tiny_model_dir, adapters):
    for n in (1, 5, 9):
        gen = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(n))
        c = gen.candidates[0]
        assert c.token_count <= n
        if c.token_count == n:
            assert c.finish_reason == "MAX_TOKENS"
    gen = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(9))
    assert gen.candidates[0].finish_reason == "MAX_TOKENS"  # the base model rambles on
    assert gen.prompt_token_count > 0 and gen.candidates_token_count == 9


def test_stop_sequences_cut_the_answer(server, tiny_model_dir):
    full = server.generate(tiny_model_dir, TEMPLATE, "hello world", greedy(30)).candidates[0]
    text = full.output
    assert len(text) > 6
    stop = text[3:5]
    cut = server.generate(
        tiny_model_dir, TEMPLATE, "hello world", greedy(30, stop_sequences=(stop,))
    )
    c = cut.candidates[0]
    assert c.output == text[: text.index(stop)] and stop not in c.output
    assert c.finish_reason == "STOP" and c.token_count < full.token_count


def test_candidate_count_and_sampling(server, tiny_model_dir, adapters):
    s = Sampling(temperature=1.5, top_p=0.95, top_k=40, candidate_count=5, max_output_tokens=8)
    gen = server.generate(tiny_model_dir, TEMPLATE, "one two", s, adapters[1])
    assert len(gen.candidates) == 5
    assert len({c.output for c in gen.candidates}) > 1  # sampled, not copies
    assert all(c.token_count <= 8 for c in gen.candidates)
    top1 = Sampling(temperature=1.5, top_p=1.0, top_k=1, candidate_count=3, max_output_tokens=8)
    same = server.generate(tiny_model_dir, TEMPLATE, "one two", top1, adapters[1])
    reference = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(8), adapters[1])
    assert {c.output for c in same.candidates} == {reference.candidates[0].output}  # top_k=1


def test_mixed_adapter_batch_matches_one_at_a_time(server, tiny_model_dir, adapters):
    choices = [adapters[0], adapters[1], None, adapters[2], adapters[0], adapters[3]]
    jobs = [(a, PROMPTS[i % len(PROMPTS)]) for i, a in enumerate(choices)]
    alone = [server.generate(tiny_model_dir, TEMPLATE, p, greedy(10), a) for a, p in jobs]
    # An answer arrives before the scheduler thread has tidied up after its batch; only that
    # thread may run batches, so let it finish before running one from here.
    server.scheduler.close()
    base = server.base(tiny_model_dir)
    requests = [
        Request(base, a, server._encode(base, TEMPLATE.replace("{input}", p)), greedy(10))
        for a, p in jobs
    ]
    run_batch(requests)  # one batch: six rows, four adapters and the bare base
    together = [r.stream.result() for r in requests]
    assert together == alone


def test_requests_arriving_together_share_a_batch(server, tiny_model_dir, adapters):
    streams = [
        server.submit(tiny_model_dir, TEMPLATE, PROMPTS[i % 4], greedy(6), adapters[i % 4])
        for i in range(8)
    ]
    results = [s.result() for s in streams]
    assert all(isinstance(r, Generation) for r in results)
    assert server.scheduler.largest_batch > 1


def test_freed_memory_goes_back_once_the_queue_empties(
    server, tiny_model_dir, adapters, monkeypatch
):
    """A burst's requests and adapter loads leave freed heap that glibc keeps resident
    (160-220 MiB after 64 requests over 25 tuned models on the packaged base): the generation
    thread gives it back whenever its queue empties, never between batches while requests
    wait."""
    import time

    from tunesmith.serving import batcher

    waiting: list[int] = []  # requests waiting at each trim
    monkeypatch.setattr(
        batcher, "return_freed_memory", lambda: waiting.append(len(server.scheduler._pending))
    )
    server.scheduler.max_rows = 2  # eight requests: four batches
    streams = [
        server.submit(tiny_model_dir, TEMPLATE, PROMPTS[i % 4], greedy(6), adapters[i % 4])
        for i in range(8)
    ]
    assert all(isinstance(s.result(), Generation) for s in streams)
    deadline = time.monotonic() + 10
    while not waiting and time.monotonic() < deadline:  # after the last answer is put
        time.sleep(0.01)
    assert server.scheduler.batches >= 4
    assert waiting and set(waiting) == {0}


FREE_A_LARGE_BLOCK = """
import ctypes, ctypes.util, os, sys
from tunesmith.serving.batcher import map_large_buffers
if sys.argv[1] == "serving":
    map_large_buffers()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block
size = 9 << 20  # a tuned model's llama.cpp adapter buffer on the packaged base
libc.free(touched(size))  # an evicted adapter: glibc moves its threshold past this size
block, later = touched(size), touched(64 << 10)  # the next adapter, then something small
before = resident()
libc.free(block)
print(before - resident())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_serving_process_gives_back_the_adapter_buffers_it_frees():
    """Adapters loaded after an eviction must not land on the heap, where freeing them leaves
    their pages resident (a server's memory grew with every tuned model it had served)."""

    def given_back(process: str) -> int:
        code = [sys.executable, "-c", FREE_A_LARGE_BLOCK, process]
        return int(subprocess.run(code, capture_output=True, text=True, check=True).stdout)

    assert given_back("serving") >= 8 << 20
    assert given_back("user") < 1 << 20  # glibc's default, left alone in a user's process


def test_stream_yields_text_as_it_is_made(server, tiny_model_dir, adapters):
    stream = server.submit(tiny_model_dir, TEMPLATE, "one two", greedy(10, candidate_count=2))
    events = list(stream)
    deltas, final = events[:-1], events[-1]
    assert isinstance(final, Generation) and all(isinstance(d, Delta) for d in deltas)
    assert len(deltas) > 2 and all(all(t for t in d.texts.values()) for d in deltas)
    for i, c in enumerate(final.candidates):
        assert "".join(d.texts.get(i, "") for d in deltas) == c.output


def test_pytorch_decodes_on_one_thread_while_a_run_trains(
    tiny_model_dir, adapters, tmp_path, monkeypatch
):
    """As llama.cpp (tests/serving/test_llama.py): beside a tuning run the PyTorch engine's
    threads would wait for cores the run holds, so it decodes on one thread while a run trains,
    then on every core again, with the same answers. torch keeps the count per thread: a run in
    a thread of the serving process (this test's, as ``tunesmith serve``'s thread worker) keeps
    every core."""
    from tunesmith.engine import cores, recipe

    if cores.usable() < 2:
        pytest.skip("one core: PyTorch decodes on one thread anyway")
    monkeypatch.setattr(threads, "CHECK_SECONDS", 0.0)
    # The lock's file is this test's own: runs elsewhere on the machine stay out of it.
    monkeypatch.setattr(cores, "training_lock", lambda: tmp_path / "training.lock")
    decoded_on: list[int] = []  # the generation thread's count at each decoding step
    forward = pytorch._forward

    def counted(*args, **kwargs):
        out = forward(*args, **kwargs)
        decoded_on.append(torch.get_num_threads())
        return out

    monkeypatch.setattr(pytorch, "_forward", counted)
    server = torch_server()

    def ask():
        decoded_on.clear()
        answer = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(12), adapters[0])
        return set(decoded_on), answer

    counts, before = ask()
    assert counts == {cores.usable()}
    during: list = []
    run = recipe.Recipe(tiny_model_dir, [("1", "2")] * 4, tmp_path / "run", batch_size=2)
    recipe.run(run, lambda _r: during.append((ask(), torch.get_num_threads())) or True)
    assert during and all(seen == (({1}, before), cores.usable()) for seen in during)
    assert ask() == ({cores.usable()}, before)
