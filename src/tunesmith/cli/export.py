"""``tunesmith export MODEL --format gguf --out DIR``: a tuned model for another runtime.

Shows a progress bar while the files are written (or downloaded from a server with
``--endpoint``), then each file with its size, how to run it, and (on stdout, in
``sha256sum``'s format) each file's SHA-256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ._common import (
    ApiKey,
    Endpoint,
    JsonOut,
    err_console,
    escape,
    handle_errors,
    make_client,
    out_console,
    print_json,
    tuned_model_name,
)

FORMATS_HELP = (
    "adapter (peft folder), merged (transformers folder), gguf (one GGUF file and an Ollama "
    "Modelfile) or gguf-lora (a GGUF LoRA adapter, the base as GGUF, a Modelfile)."
)


def export(
    model: Annotated[str, typer.Argument(help="The tuned model: ID or tunedModels/ID.")],
    format: Annotated[str, typer.Option("--format", "-f", help=FORMATS_HELP)] = "gguf",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The folder to write into (default: ./ID-FORMAT)."),
    ] = None,
    quantization: Annotated[
        str | None,
        typer.Option(
            "--quantization", "-q", help="GGUF formats: F16 (default), BF16, Q8_0 or F32."
        ),
    ] = None,
    json_out: JsonOut = False,
    endpoint: Endpoint = None,
    api_key: ApiKey = None,
) -> None:
    """Export a tuned model for transformers, peft, llama.cpp, Ollama or LM Studio."""
    import tunesmith as ts

    name = tuned_model_name(model)
    folder = out or Path(f"{name.removeprefix('tunedModels/')}-{format}")
    with handle_errors():
        client = make_client(endpoint, api_key)
        with _bar(disable=json_out) as report:
            done = ts.export_tuned_model(
                name, format, folder, quantization=quantization, progress=report, client=client
            )
        sums = {f: _sha256(f) for f in done.files}
    if json_out:
        print_json(
            {
                "tunedModel": done.tuned_model,
                "format": done.format,
                "quantization": done.quantization,
                "folder": str(done.folder),
                "files": [
                    {"path": str(f), "sizeBytes": f.stat().st_size, "sha256": sums[f]}
                    for f in done.files
                ],
            }
        )
        return
    err_console.print(
        f"exported {done.tuned_model} as {done.format}"
        + (f" ({done.quantization})" if done.quantization else "")
        + f": {_size(done.size_bytes)} in {escape(str(done.folder))}"
    )
    for f in done.files:
        err_console.print(f"  {escape(str(f))}  {_size(f.stat().st_size)}")
    # stdout in sha256sum's format: `tunesmith export ... > SHA256SUMS; sha256sum -c SHA256SUMS`
    for f in done.files:
        out_console.print(f"{sums[f]}  {escape(str(f))}", overflow="ignore", crop=False)
    for line in _how_to_run(done):
        err_console.print(f"  {escape(line)}")


class _bar:
    """A rich progress bar fed by the export's ``progress(what, done, total)`` calls."""

    def __init__(self, disable: bool):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=disable,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def __call__(self, what: str, done: int, total: int) -> None:
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(escape(what), total=total or None)
        self.progress.update(self.tasks[what], completed=done, total=total or None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _how_to_run(done) -> list[str]:
    folder = done.folder
    if done.format == "gguf":
        return [
            f"llama.cpp: llama-cli -m {done.main_file}",
            f"Ollama:    cd {folder} && ollama create {done.tuned_model.split('/')[-1]} "
            "-f Modelfile",
        ]
    if done.format == "gguf-lora":
        base = next(f for f in done.files if f.suffix == ".gguf" and f != done.main_file)
        return [
            f"llama.cpp: llama-cli -m {base} --lora {done.main_file}",
            f"Ollama:    cd {folder} && ollama create {done.tuned_model.split('/')[-1]} "
            "-f Modelfile",
        ]
    if done.format == "merged":
        return [f"transformers: AutoModelForCausalLM.from_pretrained({str(folder)!r})"]
    return [f"peft: PeftModel.from_pretrained(base_model, {str(folder)!r})"]


def register(app: typer.Typer) -> None:
    app.command("export")(export)
