"""Decoding through llama.cpp (``llama-cpp-python``), where it is installed.

On a CPU, llama.cpp decodes one sequence several times faster than PyTorch's eager path
(its fused kernels read each F16 matrix once per token; PyTorch dispatches ~200 small
products), in a third of the memory. So a base model whose architecture the GGUF writer
knows is served here by default (``TUNESMITH_SERVING_ENGINE=auto``):

* the base's weights are written once as a GGUF file (F16, or F32 for
  ``TUNESMITH_SERVING_WEIGHTS=float32``), inside the folder of a base tunesmith converted,
  else into the home's serving cache, and memory-mapped;
* each tuned model's LoRA adapter is written once as a GGUF adapter into the home's serving
  cache and loaded over the one base, within ``TUNESMITH_ADAPTER_CACHE``'s bounds (least
  recently used out first). llama.cpp applies one set of adapters to a whole context, so the
  requests of a scheduler batch are grouped by tuned model, and each group decodes together:
  one sequence per candidate in a KV cache they share (:data:`SEQUENCES`, :data:`KV_TOKENS`),
  each step reading the weights once for all; on several cores, groups decode at once on
  :data:`CONTEXTS` contexts over the same weights, each on its share of the cores;
* tunesmith still tokenises (the prompt format training used) and chooses each token with its
  own sampler from llama.cpp's logits, in the loop the PyTorch path runs
  (:func:`.batcher.stream_rows`), so temperature / top-k / top-p / seeds, stop sequences and
  streaming mean what they mean there.

What llama.cpp cannot serve (an architecture the GGUF writer does not know, an adapter it
does not take, a prompt plus answer longer than :data:`CONTEXT_TOKENS`) goes to the PyTorch
path instead, loaded on first need (:mod:`.pytorch`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np

from ..errors import FailedPrecondition, TunesmithError
from .adapters import adapter_name
from .batcher import Request, Row, internal, make_rows, stream_rows
from .threads import Follower, decode_threads

log = logging.getLogger("tunesmith.serving")

SEQUENCES = 16
"""Sequences (candidates of requests to one tuned model) llama.cpp decodes together: each
step reads the weights once for all of them."""
KV_TOKENS = 2048
"""Cells of the KV cache the sequences share (F16: 48 MiB for the packaged base, allocated
whole); a batch of sequences reserves each one's longest answer and each request's prompt,
which its candidates share (six requests of the default 256 tokens, a 100-token prompt each,
decode together; a request's candidates that do not fit together decode in turn)."""
CONTEXT_TOKENS = 2048
"""The llama.cpp context (prompt and answer) of a base, at most (less if the model was trained
on less); its F16 KV cache is allocated whole (48 MiB for the packaged base). Longer requests
are decoded by the PyTorch path."""
CONTEXTS = 2
"""Contexts over one base's weights that decode different tuned models at once, each on its
share of the cores (llama.cpp applies one adapter to a whole context, so requests to
different tuned models cannot share a batch): 8 requests over 8 tuned models on 2 cores,
each context on one thread, 1.45-1.57x the tokens per second of one context on both threads
decoding them in turn (AMD EPYC Zen 5). Each context beyond the first holds its own KV cache
(:data:`KV_TOKENS`), made when first needed."""
PROMPT_BATCH = 512  # prompt tokens evaluated per llama.cpp call


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def without_extra_buffers(model_params):
    """llama.cpp's model parameters ``model_params`` with its extra buffer types off. They
    repack weights for a CPU's matrix units (AMX): on the AMX Xeon a second copy of the F16
    base (+263 MiB RSS) that decoded no faster (55 tokens/s either way), a stderr line for
    every LoRA tensor of every tuned model loaded (210 for the packaged base), which those
    buffers cannot hold, and, for quantized files, kernels that died of an illegal instruction
    (``tilezero``) with llama-cpp-python 0.3.36."""
    model_params.use_extra_bufts = False
    return model_params


def base_gguf(base_dir: Path, config, tokenizer, weights: str, cache_dir: Path) -> Path:
    """The model in ``base_dir`` (its ``config``: see
    :func:`~tunesmith.engine.export.gguf_file.folder_config`) as a GGUF file, written on first
    use. A base model tunesmith converted keeps it inside its folder (shared by every home of
    the installation, so the packaged base converts once per machine); any other folder (a
    user's own model, a fully tuned one) is left as it is, its copy going into ``cache_dir``,
    as does a read-only one's.
    Raises FailedPrecondition for an architecture the GGUF writer does not know."""
    from ..engine.base_models import COMPLETE
    from ..engine.export import gguf_file

    gguf_file.gguf_architecture(config)  # refuse early
    quant = "F32" if weights == "float32" else "F16"
    template = getattr(tokenizer, "chat_template", None) or ""

    def write(out: Path) -> None:
        args = (str(base_dir), str(out), quant, template)
        if "torch" in sys.modules:  # loaded already: converting here costs nothing more
            _write_base(*args)
        else:
            _in_child(_write_base, args, f"converting {base_dir.name} for llama.cpp")

    # Named for the folder's path and config's time: a copied or rewritten folder converts anew.
    name = f"{adapter_name(base_dir, 'config.json')}-{quant}"
    inside = base_dir / f".serving-{name}.gguf"
    if inside.exists():
        return inside
    if (base_dir / COMPLETE).exists():
        try:
            write(inside)
            return inside
        except PermissionError:
            pass
    return _cached(cache_dir, name, base_dir, write)


def _write_base(base_dir: str, out: str, quant: str, template: str) -> None:
    from ..engine.export import gguf_file
    from ..engine.export.weights import load_tuned

    folder = Path(base_dir)
    model = load_tuned(folder, None)
    gguf_file.write_model(model, folder, Path(out), quant, name=folder.name, chat_template=template)


def _in_child(function, args: tuple[str, ...], what: str) -> None:
    """``function(*args)`` in a fresh interpreter: converting loads the model in float32
    through torch, which a server that llama.cpp serves whole then never holds (neither torch,
    200+ MiB, nor that copy). Not multiprocessing's spawn, which re-runs the caller's main
    script (an SDK user's, without a ``__main__`` guard) in the child."""
    import subprocess

    code = (
        f"import sys; from {function.__module__} import {function.__name__} as f; f(*sys.argv[1:])"
    )
    env = dict(os.environ)
    source = str(Path(__file__).resolve().parents[2])  # where this tunesmith is imported from
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise FailedPrecondition(f"{what} failed: {lines[-1]}")


def adapter_gguf(adapter_dir: Path, config, cache_dir: Path) -> Path:
    """A tuned model's peft adapter over a base of ``config`` (its config.json, see
    :func:`~tunesmith.engine.export.gguf_file.folder_config`) as a GGUF LoRA adapter in
    ``cache_dir``, written once and without torch (a re-tuned folder has a new name, see
    :func:`.adapters.adapter_name`)."""
    from ..engine.export import gguf_file
    from ..engine.export.weights import read_lora

    def write(out: Path) -> None:
        gguf_file.write_lora(read_lora(adapter_dir), config, out, name=adapter_dir.name)

    return _cached(cache_dir, f"{adapter_name(adapter_dir)}-lora", adapter_dir, write)


def _cached(cache_dir: Path, name: str, source: Path, write) -> Path:
    """``cache_dir/name.gguf``, made by ``write`` unless it exists. Beside it, ``name.source``
    names the folder it was made from: copies of folders since deleted (a deleted tuned
    model) are removed whenever a new copy is made, so the cache does not grow forever."""
    out = Path(cache_dir) / f"{name}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    for sidecar in out.parent.glob("*.source"):
        if not Path(sidecar.read_text()).exists():
            sidecar.with_suffix(".gguf").unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
    out.with_suffix(".source").write_text(str(Path(source).resolve()))
    write(out)
    return out


class _Weights:
    """A base model's weights in llama.cpp and the tuned adapters loaded over them, shared by
    the base's contexts (:class:`LlamaModel`), which may decode in different threads."""

    def __init__(self, gguf: Path, max_adapters: int, max_adapter_bytes: int | None):
        import llama_cpp

        # llama.cpp logs every load to stderr through llama-cpp-python's logger; keep errors.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        _start_backend()
        model_params = without_extra_buffers(llama_cpp.llama_model_default_params())
        self.handle = llama_cpp.llama_model_load_from_file(str(gguf).encode(), model_params)
        if not self.handle:
            raise FailedPrecondition(f"llama.cpp cannot load {gguf.name}")
        self.gguf = gguf
        self.vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.handle))
        # TUNESMITH_ADAPTER_CACHE's bounds, as on the PyTorch path (see .adapters): a loaded
        # adapter holds its GGUF file's bytes (F32 A and B matrices).
        self.max_adapters, self.max_adapter_bytes = max(1, max_adapters), max_adapter_bytes
        self.adapters: OrderedDict[Path, tuple[object, int]] = OrderedDict()  # file -> handle
        self.contexts: list[LlamaModel] = []
        self.lock = threading.Lock()  # the adapters, and which one each context applies

    @property
    def nbytes(self) -> int:
        return sum(size for _, size in self.adapters.values())

    def apply(self, context: LlamaModel, adapter: Path | None) -> None:
        """Apply ``adapter`` (None: the plain base) to ``context``, loading it first."""
        import llama_cpp

        with self.lock:  # no other context frees it between loading and applying
            if adapter is None:
                failed = llama_cpp.llama_set_adapters_lora(context.ctx, None, 0, None)
            else:
                handle = self._load(adapter)
                handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
                scale = (ctypes.c_float * 1)(1.0)
                failed = llama_cpp.llama_set_adapters_lora(context.ctx, handles, 1, scale)
            if failed:
                raise FailedPrecondition(f"llama.cpp could not apply the adapter {adapter}")
            context.active = adapter

    def _load(self, adapter: Path):
        import llama_cpp

        if adapter not in self.adapters:
            handle = llama_cpp.llama_adapter_lora_init(self.handle, str(adapter).encode())
            if not handle:
                raise FailedPrecondition(f"llama.cpp could not load the adapter {adapter.name}")
            self.adapters[adapter] = (handle, adapter.stat().st_size)
        self.adapters.move_to_end(adapter)
        self._evict(keep=adapter)
        return self.adapters[adapter][0]

    def _evict(self, keep: Path) -> None:
        """Free the least recently used adapters past the bounds; never ``keep`` (about to be
        applied) or one a context applies now."""
        import llama_cpp

        applied = {keep} | {c.active for c in self.contexts}
        for path in list(self.adapters):
            over_bytes = self.max_adapter_bytes is not None and (
                self.nbytes > self.max_adapter_bytes
            )
            if len(self.adapters) <= self.max_adapters and not over_bytes:
                return
            if path not in applied:
                llama_cpp.llama_adapter_lora_free(self.adapters.pop(path)[0])


class LlamaModel:
    """One llama.cpp context over a base model's weights, with its tuned adapters, decoding up
    to :data:`SEQUENCES` sequences together (under one adapter at a time). One thread calls
    it at a time; a second context over the same weights (``beside``) decodes other tuned
    models at the same time, in another thread."""

    def __init__(
        self,
        gguf: Path,
        max_adapters: int,
        max_adapter_bytes: int | None = None,
        context: int = CONTEXT_TOKENS,
        trained: int = KV_TOKENS,
        beside: LlamaModel | None = None,
    ):
        """``context``: tokens of prompt and answer per sequence; ``trained``: the longest
        sequence the model was trained on (the shared cache is no larger); ``beside``: a
        context whose weights and adapters this one shares."""
        import llama_cpp

        if beside is None:
            self._weights = _Weights(gguf, max_adapters, max_adapter_bytes)
        else:
            self._weights = beside._weights
        self.context = context  # tokens of prompt and answer, per sequence
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = max(min(KV_TOKENS, trained), context)
        params.n_batch = params.n_ubatch = PROMPT_BATCH
        params.n_seq_max = SEQUENCES
        params.kv_unified = True  # the sequences share the cache's cells, whatever their lengths
        params.n_threads = params.n_threads_batch = decode_threads()
        self.ctx = llama_cpp.llama_init_from_model(self._weights.handle, params)
        if not self.ctx:
            if beside is None:
                llama_cpp.llama_model_free(self._weights.handle)
            raise FailedPrecondition(f"llama.cpp cannot make a context for {gguf.name}")
        self.kv_tokens = params.n_ctx
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(PROMPT_BATCH, 0, SEQUENCES)
        self.vocab = self._weights.vocab
        self._lengths = [0] * SEQUENCES  # tokens each sequence holds
        self.active: Path | None = None  # the adapter applied
        self.sharing = 1  # contexts decoding at once, which share the cores
        self._follow_threads = Follower(
            lambda: self.threads,
            lambda n: llama_cpp.llama_set_n_threads(self.ctx, n, n),
            lambda: max(1, decode_threads() // self.sharing),
        )  # called before every decode: one thread while a run trains (see .threads)
        self._weights.contexts.append(self)

    def beside(self) -> LlamaModel:
        """A second context over these weights and adapters (a KV cache of its own)."""
        w = self._weights
        return LlamaModel(
            w.gguf, w.max_adapters, w.max_adapter_bytes, self.context, self.kv_tokens, beside=self
        )

    def share_cores(self, contexts: int) -> None:
        """Decode on a ``contexts``-th of the threads from the next step on (another
        context's thread may call this)."""
        if contexts != self.sharing:
            self.sharing = contexts
            self._follow_threads.recheck()

    @property
    def threads(self) -> int:
        """The threads llama.cpp decodes on now (see :mod:`.threads`)."""
        import llama_cpp

        return llama_cpp.llama_n_threads(self.ctx)

    @property
    def adapters(self) -> list[Path]:
        """The adapter files loaded over the base, least recently used first."""
        return list(self._weights.adapters)

    @property
    def adapter_bytes(self) -> int:
        return self._weights.nbytes

    def fits(self, prompt_tokens: int, max_new_tokens: int) -> bool:
        """One sequence's prompt and longest answer fit its context and the shared cache."""
        return prompt_tokens + max_new_tokens <= min(self.context, self.kv_tokens)

    def use(self, adapter: Path | None) -> None:
        """Decode with ``adapter`` (a GGUF LoRA file) over the base from now on; None: the
        plain base. Raises FailedPrecondition when llama.cpp refuses the file."""
        if adapter != self.active:
            self._weights.apply(self, adapter)

    def decode(self, appended: list[tuple[tuple[int, ...], list[int]]]):
        """Append each ``(sequences, tokens)``'s tokens to each of those sequences (of equal
        lengths: the candidates of one request share their prompt's cells, computed once);
        the logits after each one's last token, a float32 array [len(appended), vocab]."""
        import llama_cpp

        self._follow_threads()
        out = np.empty((len(appended), self.vocab), dtype=np.float32)
        batch, filled, last = self._batch, 0, []  # last: (row, index in the batch)
        pending = [
            (row, seqs, token, i == len(tokens) - 1)
            for row, (seqs, tokens) in enumerate(appended)
            for i, token in enumerate(tokens)
        ]
        for at, (row, seqs, token, is_last) in enumerate(pending):
            batch.token[filled] = token
            batch.pos[filled] = self._lengths[seqs[0]]
            for j, seq in enumerate(seqs):
                batch.seq_id[filled][j] = seq
                self._lengths[seq] += 1
            batch.n_seq_id[filled] = len(seqs)
            batch.logits[filled] = is_last
            if is_last:
                last.append((row, filled))
            filled += 1
            if filled == PROMPT_BATCH or at == len(pending) - 1:
                batch.n_tokens = filled
                status = llama_cpp.llama_decode(self.ctx, batch)
                if status != 0:
                    self.clear()  # what the cache holds is unknown now
                    raise RuntimeError(f"llama_decode returned {status}")
                for r, index in last:
                    logits = llama_cpp.llama_get_logits_ith(self.ctx, index)
                    out[r] = np.ctypeslib.as_array(logits, shape=(self.vocab,))
                filled, last = 0, []
        return out

    def release(self, seq: int) -> None:
        """Forget what ``seq`` holds (its row finished)."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
        self._lengths[seq] = 0

    def clear(self) -> None:
        import llama_cpp

        llama_cpp.llama_memory_clear(self._memory, True)
        self._lengths = [0] * SEQUENCES


_backend_started = False


def _start_backend() -> None:
    global _backend_started
    if not _backend_started:
        import llama_cpp

        llama_cpp.llama_backend_init()
        _backend_started = True


class LlamaBase:
    """What llama.cpp serves of one base model: requests grouped by tuned model, each group
    decoded together (one sequence per candidate), with tunesmith's own sampler; see the
    module doc."""

    def __init__(
        self,
        config,
        gguf: Path,
        cache_dir: Path,
        max_adapters: int,
        max_adapter_bytes: int | None = None,
    ):
        """``config``: the base's config.json, see
        :func:`~tunesmith.engine.export.gguf_file.folder_config`."""
        self.cache_dir = Path(cache_dir)
        self.config = config  # for each adapter's GGUF copy
        trained = getattr(self.config, "max_position_embeddings", None)
        trained = trained or KV_TOKENS
        self.model = LlamaModel(
            gguf, max_adapters, max_adapter_bytes, min(CONTEXT_TOKENS, trained), trained
        )
        self._refused: dict[Path, str] = {}  # adapter folders llama.cpp does not take, and why
        self._beside: list[LlamaModel] = []  # contexts beside self.model's, made on first need
        self._most_contexts = CONTEXTS  # fewer once llama.cpp could not make another

    def run(self, requests: list[Request]) -> list[Request]:
        """Decode what llama.cpp can of ``requests``; the rest are returned, in order. Tuned
        models decode in turn, or, on several cores, on up to :data:`CONTEXTS` at once."""
        left: dict[int, list[Request]] = {}  # by tuned model: what llama.cpp does not decode
        queue: deque[tuple[int, Path | None, Path | None, list[Request]]] = deque()
        for i, adapter in enumerate(dict.fromkeys(r.adapter_dir for r in requests)):
            group = [r for r in requests if r.adapter_dir == adapter and not r.stream.cancelled]
            gguf = None if adapter is None else self._adapter(adapter)
            if adapter is not None and gguf is None:
                left[i] = group
            elif group:
                queue.append((i, adapter, gguf, group))
        contexts = self._contexts(len(queue))
        failures: list[BaseException] = []
        running, lock = list(contexts), threading.Lock()  # the contexts still decoding
        for context in contexts:
            context.share_cores(len(contexts))

        def serve(context: LlamaModel) -> None:  # takes tuned models in order of arrival
            try:
                while not failures:
                    try:
                        i, adapter, gguf, group = queue.popleft()
                    except IndexError:
                        return
                    left[i] = self._group(context, adapter, gguf, group)
            except BaseException as e:  # raised in the scheduler thread, below
                failures.append(e)
            finally:  # the cores it held go to those still decoding, from their next step
                with lock:
                    running.remove(context)
                    for other in running:
                        other.share_cores(len(running))
                context.share_cores(1)

        beside = [
            threading.Thread(target=serve, args=(c,), name="tunesmith-generation", daemon=True)
            for c in contexts[1:]
        ]
        for thread in beside:
            thread.start()
        serve(contexts[0])
        for thread in beside:
            thread.join()
        if failures:
            raise failures[0]
        return [r for i in sorted(left) for r in left[i]]

    def _contexts(self, groups: int) -> list[LlamaModel]:
        """The contexts to decode ``groups`` tuned models on: one, or on several cores (no
        tuning run beside) up to :data:`CONTEXTS`, made on first need."""
        wanted = max(1, min(groups, self._most_contexts, decode_threads()))
        while len(self._beside) + 1 < wanted:
            try:
                self._beside.append(self.model.beside())
            except FailedPrecondition as e:  # no memory for its cache, say: decode in turn
                log.warning("serving on %d llama.cpp context(s): %s", len(self._beside) + 1, e)
                self._most_contexts = wanted = len(self._beside) + 1
        return [self.model, *self._beside[: wanted - 1]]

    def _group(
        self, context: LlamaModel, adapter: Path | None, gguf: Path | None, group: list[Request]
    ) -> list[Request]:
        """Decode one tuned model's requests (``adapter``: its folder, ``gguf``: its adapter
        file; None: the plain base) on ``context``; returns those it cannot, for the PyTorch
        path."""
        try:
            context.use(gguf)
        except FailedPrecondition as e:  # llama.cpp refused the adapter file
            if adapter is None:
                raise
            self._refused[adapter] = str(e)
            return group
        rest = [r for r in group if not self._fits(r)]
        rows = make_rows([(r, None) for r in group if self._fits(r)])
        failed: set[int] = set()  # requests answered with an error: their rows stop
        for run in self._runs(rows):
            run = [row for row in run if id(row.request) not in failed]
            try:
                if run:
                    self._decode(context, run, rows)
            except Exception as e:  # a bug fails these requests, not the others
                log.exception("llama.cpp generation failed")
                for r in {id(row.request): row.request for row in run}.values():
                    failed.add(id(r))
                    r.stream.put(e if isinstance(e, TunesmithError) else internal(e))
        return rest

    def _fits(self, r: Request) -> bool:
        return self.model.fits(len(r.prompt_ids), r.sampling.max_output_tokens)

    def _runs(self, rows: list[Row]):
        """``rows`` in order, as runs that fit the sequences and the cache together: each row
        reserves its longest answer, each request its prompt once (its rows in a run share
        it); a request's candidates may span runs."""
        run: list[Row] = []
        cells, prompted = 0, set[int]()
        for row in rows:
            r = row.request
            prompt = 0 if id(r) in prompted else len(r.prompt_ids)
            need = prompt + r.sampling.max_output_tokens
            if run and (len(run) == SEQUENCES or cells + need > self.model.kv_tokens):
                yield run
                run, cells, prompted = [], 0, set()
                need = len(r.prompt_ids) + r.sampling.max_output_tokens
            run.append(row)
            cells += need
            prompted.add(id(r))
        if run:
            yield run

    def _adapter(self, folder: Path) -> Path | None:
        """The GGUF file of ``folder``'s adapter; None when llama.cpp cannot take it (the
        PyTorch path serves it, or says why it cannot)."""
        if folder in self._refused:
            return None
        try:
            return adapter_gguf(folder, self.config, self.cache_dir)
        except Exception as e:  # an option the writer does not export, an unreadable file
            log.info("tuned model %s is served by PyTorch: %s", folder.name, e)
            self._refused[folder] = str(e)
            return None

    def _decode(self, context: LlamaModel, rows: list[Row], siblings: list[Row]) -> None:
        """One sequence per row (a request's candidate), a request's rows sharing the cells of
        its prompt, evaluated once; finished rows leave the cache at once. ``siblings``: all
        rows of these requests, this run's and other runs'."""
        seqs = list(range(len(rows)))
        context.clear()
        shared: dict[int, list[int]] = {}  # request -> its rows here, which share its prompt
        for b, row in enumerate(rows):
            shared.setdefault(id(row.request), []).append(b)
        prompts = context.decode(
            [(tuple(bs), rows[bs[0]].request.prompt_ids) for bs in shared.values()]
        )
        of_row = {b: k for k, bs in enumerate(shared.values()) for b in bs}
        logits = prompts[[of_row[b] for b in range(len(rows))]]

        def step(tokens: list[int], keep):
            nonlocal seqs
            if keep is not None:
                kept = set(keep)
                for b, s in enumerate(seqs):
                    if b not in kept:
                        context.release(s)
                seqs = [s for b, s in enumerate(seqs) if b in kept]
            return context.decode([((s,), [t]) for s, t in zip(seqs, tokens, strict=True)])

        stream_rows(rows, logits, step, siblings)
