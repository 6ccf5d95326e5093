"""Loading a base model's tokenizer: one rule for training and serving, so both cut text
into the same tokens.

transformers' ``AutoTokenizer`` imports torch (its config classes do), 200+ MiB a server that
generates through llama.cpp never needs otherwise. A folder whose ``tokenizer_config.json``
names ``TokenizersBackend`` (what transformers 5 saves for a ``tokenizer.json`` tokenizer,
e.g. every base tunesmith converts) is loaded as that class directly, which is what
``AutoTokenizer`` resolves such a folder to; any other folder goes through ``AutoTokenizer``.
"""

from __future__ import annotations

import json
from pathlib import Path

DIRECT = "TokenizersBackend"


def load_tokenizer(base_dir: Path):
    folder = Path(base_dir)
    if _declared_class(folder) == DIRECT:
        from transformers import PreTrainedTokenizerFast as tokenizer_class
    else:
        from transformers import AutoTokenizer as tokenizer_class  # type: ignore[assignment]
    tok = tokenizer_class.from_pretrained(folder)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _declared_class(folder: Path) -> str | None:
    """The class ``tokenizer_config.json`` names, unless it brings its own code (auto_map)."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    if "auto_map" in config or not (folder / "tokenizer.json").is_file():
        return None
    return config.get("tokenizer_class")
