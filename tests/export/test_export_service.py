"""The export rules, in the service: who may export, which models, which formats; and the
prepared exports the HTTP download streams."""

from __future__ import annotations

import pytest

from tiny_models import tiny_model_of_architecture
from tunesmith.errors import FailedPrecondition, InvalidArgument, NotFound
from tunesmith.jobs.worker import Worker
from tunesmith.records.permissions import NewPermission
from tunesmith.service import CreateTunedModelRequest
from tunesmith.store.keys import KeyStore
from tunesmith.types import TuningExample

EXAMPLES = [TuningExample(str(i), str(i + 1)) for i in range(1, 9)]


def tune(service, model_id: str, caller=None, **kw) -> str:
    kw.setdefault("source_model", "models/text-bison-001")  # the tiny model here
    req = CreateTunedModelRequest(examples=EXAMPLES, id=model_id, epoch_count=1, **kw)
    service.tuning.create_tuned_model(req, caller)
    return f"tunedModels/{model_id}"


def test_readers_export_active_models_in_known_formats(service, tmp_path):
    exports = service.exports
    name = tune(service, "mine", caller="alice")
    with pytest.raises(FailedPrecondition, match="tunedModels/mine is CREATING, not ACTIVE"):
        exports.export_tuned_model(name, "gguf", tmp_path / "early", caller="alice")
    assert Worker(service.settings, service.store).run_once()

    with pytest.raises(InvalidArgument, match="format: 'onnx' is not one of adapter, merged"):
        exports.export_tuned_model(name, "onnx", tmp_path / "x", caller="alice")
    with pytest.raises(InvalidArgument, match="format: required"):
        exports.export_tuned_model(name, None, tmp_path / "x", caller="alice")
    with pytest.raises(InvalidArgument, match="quantization: 'Q3' is not one of F16"):
        exports.export_tuned_model(name, "gguf", tmp_path / "x", "Q3", caller="alice")
    # Someone the model is not shared with does not learn it exists; a READER may export.
    with pytest.raises(NotFound):
        exports.export_tuned_model(name, "gguf", tmp_path / "bob", caller="bob")
    KeyStore(service.store).create("bob-key", user="bob")
    service.permissions.create_permission(name, NewPermission("USER", "bob", "READER"), "alice")
    done = exports.export_tuned_model(name, "gguf", tmp_path / "bob", "q8_0", caller="bob")
    assert done.quantization == "Q8_0" and done.main_file.name == "mine-Q8_0.gguf"
    assert sorted(f.name for f in done.files) == ["Modelfile", "mine-Q8_0.gguf"]
    adapter = exports.export_tuned_model(name, "adapter", tmp_path / "adapter", caller="bob")
    assert adapter.main_file.name == "adapter_model.safetensors"


def test_a_prepared_export_is_made_once_and_goes_with_the_model(service):
    name = tune(service, "download-me")
    Worker(service.settings, service.store).run_once()
    first = service.exports.prepared_export(name, "gguf", "F32")
    again = service.exports.prepared_export(name, "gguf", "F32")
    assert again.folder == first.folder and again.files == first.files
    assert first.main_file.stat().st_mtime_ns == again.main_file.stat().st_mtime_ns
    assert first.folder.is_relative_to(service.settings.exports_dir)
    service.tuning.delete_tuned_model(name)
    assert not first.folder.exists()


def test_a_base_the_gguf_writer_does_not_know_is_named(service, tmp_path, tiny_model_dir):
    tiny_model_of_architecture(tiny_model_dir, tmp_path / "phi3", "Phi3")
    name = tune(service, "phi", source_model=str(tmp_path / "phi3"))
    assert Worker(service.settings, service.store).run_once()
    with pytest.raises(FailedPrecondition, match="architecture 'phi3': the GGUF export does not"):
        service.exports.export_tuned_model(name, "gguf", tmp_path / "out")
    with pytest.raises(FailedPrecondition, match="architecture 'phi3'"):
        service.exports.export_tuned_model(name, "gguf-lora", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    adapter = service.exports.export_tuned_model(name, "adapter", tmp_path / "adapter")
    assert (adapter.folder / "adapter_config.json").is_file()


def test_the_cli_exports_embedded_with_progress(service, tmp_path):
    from typer.testing import CliRunner

    from tunesmith.cli import app

    name = tune(service, "local")
    Worker(service.settings, service.store).run_once()
    result = CliRunner().invoke(
        app, ["export", name, "-f", "gguf", "-q", "F32", "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "local-F32.gguf" in result.stderr and "━" in result.stderr  # the progress bar
    assert "ollama create local -f Modelfile" in result.stderr
    sums = dict(line.split("  ")[::-1] for line in result.stdout.splitlines())
    assert set(sums) == {str(tmp_path / "Modelfile"), str(tmp_path / "local-F32.gguf")}
