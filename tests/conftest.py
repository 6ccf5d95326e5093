"""Shared fixtures: an isolated TUNESMITH_HOME per test, and a tiny random-initialised model.

The tiny model (2 layers, 32 wide, a byte-level BPE tokenizer trained here) is a local model
folder, which is one of the ways users name a base model; unit tests tune it in a second. The
real packaged model is used by tests marked ``slow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CORPUS = [
    "one two three four five six seven eight nine ten eleven twelve thirteen",
    "twenty thirty forty fifty sixty seventy eighty ninety hundred thousand",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 100 1,000 -3 -2 -98 -97",
    "hello world the quick brown fox jumps over the lazy dog",
] * 20


def build_tiny_model(folder: Path) -> Path:
    """Write a tiny Llama-shaped causal LM with its own tokenizer to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        # Larger than the usual 0.02: with tied, tiny embeddings the logits stay near uniform
        # whatever the adapter learns, and tests could not see a tuned model answer.
        initializer_range=0.2,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """An empty TUNESMITH_HOME, with the SDK's default client reset around the test."""
    import tunesmith.sdk.clients as clients

    path = tmp_path / "home"
    monkeypatch.setenv("TUNESMITH_HOME", str(path))
    for var in ("TUNESMITH_DATABASE_URL", "TUNESMITH_API_ENDPOINT", "TUNESMITH_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUNESMITH_WORKER_IDLE_SECONDS", "5")
    clients.configure()
    yield path
    clients.configure()


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def converted_base_models() -> Path:
    """The packaged default base model, converted once and kept between runs (slow tests)."""
    from tunesmith.engine import base_models
    from tunesmith.settings import DEFAULT_BASE_MODEL

    path = Path(os.environ.get("TUNESMITH_TEST_CACHE") or REPO / ".test-cache") / "base-models"
    base_models.materialize(base_models.resolve(DEFAULT_BASE_MODEL, DEFAULT_BASE_MODEL), path)
    path.mkdir(parents=True, exist_ok=True)  # (empty when the shared cache has the model)
    return path


@pytest.fixture()
def real_home(home, converted_base_models) -> Path:
    """An empty home that shares the converted packaged base model."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "base-models").symlink_to(converted_base_models, target_is_directory=True)
    return home


# -- databases: the store and jobs tests run on SQLite and on PostgreSQL ------------------

POSTGRES_SERVER = os.environ.get(
    "TUNESMITH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_database():
    """A database of this run's own on the test server, dropped at the end of the run."""
    import secrets

    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    name = f"tunesmith_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as e:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL server at {POSTGRES_SERVER}: {e.orig}")
    yield make_url(POSTGRES_SERVER).set(database=name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, home, monkeypatch) -> str:
    """TUNESMITH_DATABASE_URL for this test (and the processes it starts): a SQLite file in
    the test's home, or a fresh schema in this run's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'tunesmith.db'}"
    else:
        import secrets

        from sqlalchemy import create_engine, text

        base = request.getfixturevalue("postgres_database")
        schema = f"t_{secrets.token_hex(6)}"
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        engine.dispose()
        url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    monkeypatch.setenv("TUNESMITH_DATABASE_URL", url)
    return url


@pytest.fixture()
def job_service(database_url, tiny_model_dir, monkeypatch):
    """The service over this test's database, with the tiny model as the default base."""
    from tunesmith.service import Service
    from tunesmith.settings import get_settings

    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    service = Service(get_settings())
    yield service
    service.close()


@pytest.fixture()
def make_job(job_service, tiny_model_dir):
    """Queue a tuning job through the service; returns its operation name."""
    from tunesmith.service import CreateTunedModelRequest
    from tunesmith.types import TuningExample

    def make(examples: int = 8, epochs: int = 1, batch_size: int = 2, **fields) -> str:
        rows = [TuningExample(f"{i}", f"{i + 1}") for i in range(1, examples + 1)]
        fields.setdefault("source_model", str(tiny_model_dir))
        req = CreateTunedModelRequest(
            examples=rows, epoch_count=epochs, batch_size=batch_size, **fields
        )
        return job_service.tuning.create_tuned_model(req).name

    return make


@pytest.fixture()
def service(home, tiny_model_dir, monkeypatch):
    """The service in-process over an empty home, the tiny model as the default base."""
    from tunesmith.service import Service
    from tunesmith.settings import get_settings

    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_model_dir))
    svc = Service(get_settings())
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """A real `tunesmith serve` with an in-process worker; Google's model names are the tiny
    model. Directories that need another kind of server define their own."""
    from tunesmith_server import Server, server_env

    home = tmp_path_factory.mktemp("server-home")
    s = Server(home, server_env(home, str(tiny_model_dir)))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, tiny_model_dir):
    """A real server on 127.0.0.1 with one API key (yields ``(server, key)``); the tiny model
    is its default base."""
    from tunesmith_server import Server, server_env, tunesmith

    home = tmp_path_factory.mktemp("keyed-server-home")
    env = server_env(home, str(tiny_model_dir))
    created = tunesmith("keys", "create", "tests", env=env)
    assert created.returncode == 0, created.stderr
    server = Server(home, env)
    yield server, created.stdout.strip()
    server.stop()


@pytest.fixture()
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


# -- a base model as a GGUF file, and its first-run conversion held halfway ------------------


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny model as a Q8_0 GGUF file (as llama.cpp's converter writes one: q/k rows
    permuted): a base model that a fresh home converts on its first run, in a second."""
    from transformers import AutoModelForCausalLM

    from tunesmith.engine.export.gguf_file import write_model

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32")
    out = tmp_path_factory.mktemp("tiny-gguf") / "tiny.Q8_0.gguf"
    template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    return write_model(model, tiny_model_dir, out, "Q8_0", name="tiny", chat_template=template)


class HeldConversion:
    """While this is held, a base-model conversion in this process stops at its halfway mark
    (after saying how far it is) until :meth:`release`: the first run's preparation lasts as
    long as a test needs to look at it."""

    def __init__(self):
        import threading

        self.reached = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()


@pytest.fixture()
def held_conversion(monkeypatch):
    from tunesmith.engine import gguf_import

    held, real = HeldConversion(), gguf_import.convert

    def convert(path, out, on_progress=lambda _fraction: None):
        def progress(fraction):
            on_progress(fraction)
            if fraction is not None and fraction >= 0.5 and not held.released.is_set():
                held.reached.set()
                held.released.wait(300)

        return real(path, out, progress)

    monkeypatch.setattr(gguf_import, "convert", convert)
    yield held
    held.release()


@pytest.fixture()
def preparing_server(home, tiny_gguf, held_conversion, monkeypatch):
    """A server in this process (uvicorn in a thread, its worker a thread: the held conversion is patched in this process) on a fresh home
    whose default base model is ``tiny_gguf``: its first run converts the base and, while
    ``held_conversion`` is held, stays halfway through that. Yields the server's URL."""
    import threading
    import time

    import uvicorn

    from tunesmith.api.app import create_app
    from tunesmith.settings import get_settings
    from tunesmith_server import free_port

    monkeypatch.setenv("TUNESMITH_DEFAULT_BASE_MODEL", str(tiny_gguf))
    port = free_port()
    config = uvicorn.Config(
        create_app(get_settings(), worker="thread"),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="preparing-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the in-process server did not start"
    yield f"http://127.0.0.1:{port}"
    held_conversion.release()
    server.should_exit = True
    thread.join(timeout=60)
