"""The prompt a tuned model learned, as a chat template (Jinja) and an Ollama Modelfile.

A tuned model answers well only when it sees the prompt it was tuned on: tunesmith's own
:class:`~tunesmith.engine.prompting.PromptFormat` (``PREFIX{input}SUFFIX``, kept beside the
adapter). Exports carry that prompt where each runtime looks for one:

* transformers and llama.cpp read a Jinja **chat template** (``tokenizer_config`` /
  ``chat_template.jinja``, the GGUF key ``tokenizer.chat_template``). When the base's own
  template renders one user turn exactly as the tuned prompt, it is kept; otherwise (a
  registry prompt that leaves out the base's default system prompt, a base without a chat
  template) the export carries one made from the prompt: each user turn is
  ``PREFIX content SUFFIX``, each assistant turn ``content EOS``, a system message its text
  and a blank line. A base with a template of its own keeps it for every conversation but a
  lone user turn (and its answer), as :mod:`tunesmith.engine.prompting` renders them.
* Ollama reads the Modelfile's ``TEMPLATE`` (Go template syntax) and ``PARAMETER stop``; the
  most common complaint about models exported elsewhere is gibberish from a missing template
  or stop token, so both are always written, from the same prompt.
"""

from __future__ import annotations

import json

_MARK = "\x00TUNESMITH_INPUT\x00"


def split_prompt(template: str) -> tuple[str, str]:
    """``PREFIX{input}SUFFIX`` -> (PREFIX, SUFFIX)."""
    if "{input}" not in template:
        return template, ""
    prefix, _, suffix = template.partition("{input}")
    return prefix, suffix.replace("{input}", "")


def chat_template(prompt_template: str, tokenizer) -> str:
    """The chat template an export carries: the base's own when it gives the tuned prompt
    for one user turn; else, for a base with a template of its own, one that renders a lone
    user turn (and its answer) by the prompt and every other conversation by the base's
    template, which is how :mod:`tunesmith.engine.prompting` rendered them in training;
    else one made from the prompt (see the module docstring)."""
    own = getattr(tokenizer, "chat_template", None)
    made = _from_prompt(prompt_template, tokenizer)
    if isinstance(own, str) and own:
        try:
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": _MARK}], tokenize=False, add_generation_prompt=True
            )
        except Exception:  # a template that needs fields we do not pass: make our own
            return made
        if isinstance(rendered, str) and rendered.replace(_MARK, "{input}") == prompt_template:
            return own
        one_turn = (
            "(messages | length == 1 and messages[0]['role'] == 'user') or "
            "(messages | length == 2 and messages[0]['role'] == 'user' and "
            "messages[1]['role'] == 'assistant')"
        )
        # The base's own template exactly as it is in its branch (no whitespace control).
        return f"{{%- if {one_turn} -%}}{made}{{% else %}}{own}{{% endif %}}"
    return made


def _from_prompt(prompt_template: str, tokenizer) -> str:
    prefix, suffix = split_prompt(prompt_template)
    eos = tokenizer.eos_token or ""

    def lit(text: str) -> str:  # a Jinja string literal
        return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"

    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        f"{lit(prefix)}{{{{ message['content'] }}}}{lit(suffix)}"
        "{%- elif message['role'] == 'assistant' -%}"
        f"{{{{ message['content'] }}}}{lit(eos)}"
        "{%- else -%}"
        f"{{{{ message['content'] }}}}{lit(chr(10) * 2)}"
        "{%- endif -%}"
        "{%- endfor -%}"
    )


def stop_tokens(prompt_template: str, tokenizer) -> list[str]:
    """What ends an answer: the end-of-sequence token, and every special token of the
    prompt (a model that starts a new turn has finished its answer)."""
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    for token in getattr(tokenizer, "all_special_tokens", []) or []:
        if token and token in prompt_template and token not in stops:
            stops.append(token)
    return stops


def _go_literal(text: str) -> str:
    """Text placed verbatim in a Go template inside a Modelfile's triple quotes."""
    return text.replace("{{", '{{ "{{" }}').replace('"""', '{{ "\\"\\"\\"" }}')


def ollama_template(prompt_template: str, eos: str) -> str:
    """The Go template for Ollama's TEMPLATE: the same turns as :func:`chat_template`."""
    prefix, suffix = split_prompt(prompt_template)
    return (
        "{{ range .Messages }}"
        '{{ if eq .Role "user" }}'
        f"{_go_literal(prefix)}{{{{ .Content }}}}{_go_literal(suffix)}"
        '{{ else if eq .Role "assistant" }}'
        f"{{{{ .Content }}}}{_go_literal(eos)}"
        "{{ else }}{{ .Content }}\n\n{{ end }}"
        "{{ end }}"
    )


def modelfile(
    model_file: str,
    prompt_template: str,
    tokenizer,
    *,
    adapter_file: str | None = None,
    parameters: dict[str, float | int] | None = None,
    title: str = "",
) -> str:
    """An Ollama Modelfile beside the GGUF: FROM (and ADAPTER), TEMPLATE, stop tokens and the
    tuned model's sampling defaults. ``ollama create NAME -f Modelfile`` in that folder."""
    lines = [f"# {title}" if title else "# Exported by tunesmith", f"FROM ./{model_file}"]
    if adapter_file:
        lines.append(f"ADAPTER ./{adapter_file}")
    template = ollama_template(prompt_template, tokenizer.eos_token or "")
    lines.append(f'TEMPLATE """{template}"""')
    for stop in stop_tokens(prompt_template, tokenizer):
        lines.append(f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}")
    for key, value in (parameters or {}).items():
        if value is not None:
            lines.append(f"PARAMETER {key} {value}")
    return "\n".join(lines) + "\n"
