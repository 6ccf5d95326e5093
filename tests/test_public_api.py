"""The public surface is explicit: everything in ``__all__`` exists, and nothing else leaks."""

import tunesmith
import tunesmith.vertex


def test_exported_members_exist_and_are_the_public_names():
    for module in (tunesmith, tunesmith.vertex):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
    public = {n for n in dir(tunesmith) if not n.startswith("_")}
    modules = {"data", "engine", "errors", "jobs", "sdk", "service", "serving", "settings",
               "store", "types", "vertex", "wire", "api", "cli", "demo", "records",
               "runtime", "version"}  # fmt: skip
    assert public - modules == set(tunesmith.__all__) - {"errors"}


def test_google_sdk_function_signatures():
    import inspect

    params = inspect.signature(tunesmith.create_tuned_model).parameters
    for name in ("id", "display_name", "description", "temperature", "top_p", "top_k",
                 "epoch_count", "batch_size", "learning_rate", "input_key", "output_key",
                 "client", "request_options"):  # fmt: skip
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert list(params)[:2] == ["source_model", "training_data"]


def test_importing_tunesmith_does_not_load_torch():
    # Every CLI command imports tunesmith; torch costs seconds and only generation and
    # tuning need it.
    import subprocess
    import sys

    code = "import sys, tunesmith, tunesmith.serving; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_command_line_starts_without_the_database_layer():
    # `tunesmith generate` answered by the warm generation server never touches the store:
    # the command line, the SDK and the remote client it uses load no sqlalchemy (nor numpy,
    # nor torch), which took most of a second.
    import subprocess
    import sys

    code = (
        "import sys, tunesmith.cli, tunesmith.sdk.remote, tunesmith.sdk.warm, tunesmith.jobs.embedded; "
        "print(sorted({'sqlalchemy', 'numpy', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
