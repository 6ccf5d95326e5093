"""The adapter cache: one base per process, an LRU bounded by count and bytes, reload on demand."""

from __future__ import annotations

import os

import pytest

from tunesmith.errors import InvalidArgument
from tunesmith.serving import ModelServer, parse_cache_spec
from tunesmith.serving.adapters import adapter_name

from .conftest import TEMPLATE, greedy, torch_server


def test_cache_spec_format():
    assert parse_cache_spec("64,512MiB") == (64, 512 * 2**20)
    assert parse_cache_spec("8") == (8, None)
    assert parse_cache_spec(" 3 , 1.5GB ") == (3, 1_500_000_000)
    assert parse_cache_spec("2,100") == (2, 100)
    for bad in ("", "0", "x,1MiB", "4,12parsecs", "4,-1MiB", "4,0"):
        with pytest.raises(InvalidArgument, match="TUNESMITH_ADAPTER_CACHE"):
            parse_cache_spec(bad)


def test_settings_carry_the_cache_bound(home, monkeypatch):
    from tunesmith.settings import get_settings

    monkeypatch.setenv("TUNESMITH_ADAPTER_CACHE", "3,10MiB")
    server = ModelServer.from_settings(get_settings())
    assert (server.max_adapters, server.max_adapter_bytes) == (3, 10 * 2**20)


def test_many_adapters_share_one_base(tiny_model_dir, adapters):
    server = torch_server()
    outputs = [
        server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), a).candidates[0].output
        for a in adapters
    ]
    plain = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy()).candidates[0].output
    assert len(set(outputs + [plain])) == len(adapters) + 1  # each adapter changes the answer
    assert len(server._bases) == 1  # one base model in memory for all of them
    cache = server.base(tiny_model_dir).cache
    assert cache.loads == len(adapters) and len(cache.names()) == len(adapters)


def test_eviction_by_count_and_reload(tiny_model_dir, adapters):
    server = torch_server("2")
    first = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), adapters[0])
    for a in adapters[1:3]:
        server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), a)
    cache = server.base(tiny_model_dir).cache
    assert cache.names() == [adapter_name(adapters[1]), adapter_name(adapters[2])]
    assert not cache.cached(adapters[0])  # least recently used went first
    again = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), adapters[0])
    assert again == first  # reloaded from its safetensors file, same answer
    assert cache.loads == 4 and len(cache.names()) == 2


def test_eviction_by_bytes(tiny_model_dir, adapters):
    probe = torch_server("8")
    probe.generate(tiny_model_dir, TEMPLATE, "one", greedy(2), adapters[0])
    one = probe.base(tiny_model_dir).cache.nbytes
    assert one > 0
    server = torch_server(f"8,{int(one * 2.5)}")  # room for two adapters by bytes
    for a in adapters:
        server.generate(tiny_model_dir, TEMPLATE, "one", greedy(2), a)
    cache = server.base(tiny_model_dir).cache
    assert len(cache.names()) == 2 and cache.nbytes <= one * 2.5
    assert cache.names() == [adapter_name(a) for a in adapters[-2:]]


def test_a_rewritten_adapter_is_not_served_stale(tmp_path, tiny_model_dir, adapters):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(adapters[0], folder)
    server = torch_server("8")
    before = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), folder)
    shutil.copy(adapters[1] / "adapter_model.safetensors", folder)
    stat = (folder / "adapter_model.safetensors").stat()
    os.utime(folder / "adapter_model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), folder)
    expected = server.generate(tiny_model_dir, TEMPLATE, "one two", greedy(), adapters[1])
    assert after == expected != before
