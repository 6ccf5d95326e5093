"""One rule for turning an example's input into the model's prompt, used by training and
generation alike (a tuned model must see at serving time what it saw in training)."""

from __future__ import annotations

import json
from pathlib import Path

_FORMAT_FILE = "tunesmith_prompt.json"


class PromptFormat:
    """``template`` has one ``{input}``; the target is the output plus ``eos``."""

    def __init__(self, template: str | None, tokenizer):
        if template is None:
            if getattr(tokenizer, "chat_template", None):
                marker = "\x00INPUT\x00"
                template = tokenizer.apply_chat_template(
                    [{"role": "user", "content": marker}],
                    tokenize=False,
                    add_generation_prompt=True,
                ).replace(marker, "{input}")
            else:
                template = "{input}\n"
        self.template = template
        self.eos = tokenizer.eos_token or ""

    def prompt(self, text_input: str) -> str:
        return self.template.replace("{input}", text_input)

    def target(self, output: str) -> str:
        return output + self.eos

    def save(self, folder: Path) -> None:
        """Kept beside an adapter so a tuned model is served with the format it learned."""
        (folder / _FORMAT_FILE).write_text(json.dumps({"template": self.template}))

    @classmethod
    def load(cls, folder: Path, tokenizer) -> PromptFormat | None:
        path = folder / _FORMAT_FILE
        if not path.is_file():
            return None
        return cls(json.loads(path.read_text())["template"], tokenizer)
