"""The tokenizer loader training and serving share: the tokens AutoTokenizer gives, without
importing torch where the folder allows it."""

from __future__ import annotations

import json
import subprocess
import sys

from tunesmith.engine.tokenizer import load_tokenizer

TEXTS = ["hello world", " leading space", "tabs\tand\nlines", "ünïcode — 3.14", "<eos> x"]


def test_a_tokenizers_backend_folder_loads_as_autotokenizer_would(tiny_model_dir):
    from transformers import AutoTokenizer

    ours, theirs = load_tokenizer(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "TokenizersBackend"  # the direct route is taken
    assert type(ours) is type(theirs)
    for text in TEXTS:
        ids = theirs(text, add_special_tokens=False)["input_ids"]
        assert ours(text, add_special_tokens=False)["input_ids"] == ids
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(
            ids, skip_special_tokens=True
        )
    assert (ours.eos_token_id, ours.pad_token_id) == (theirs.eos_token_id, theirs.pad_token_id)
    code = "import sys; from tunesmith.engine.tokenizer import load_tokenizer as f; "
    code += "f(sys.argv[1]); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True)
    assert out.stdout.decode().split()[-1] == "False", out.stderr.decode()


def test_a_folder_naming_another_class_goes_through_autotokenizer(tiny_model_dir, tmp_path):
    import shutil

    folder = shutil.copytree(tiny_model_dir, tmp_path / "other")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # AutoTokenizer resolves it
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(folder)
    assert (
        tok("hello world")["input_ids"]
        == load_tokenizer(tiny_model_dir)("hello world")["input_ids"]
    )
    assert tok.pad_token is not None
