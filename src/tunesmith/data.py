"""Training data: every form people have, turned into one list of examples.

An example is a :class:`~tunesmith.types.TuningExample` (``text_input`` → ``output``, the
form Google's ``create_tuned_model`` took) or a
:class:`~tunesmith.records.conversations.Conversation` (a system instruction and user / model
turns). Rows of a file or list may be any of:

* ``{"text_input": ..., "output": ...}`` (or the keys ``input_key`` / ``output_key`` name);
* Vertex's Gemini tuning rows: ``{"systemInstruction": {"parts": [{"text": ...}]},
  "contents": [{"role": "user" | "model", "parts": [{"text": ...}]}, ...]}``;
* OpenAI's chat rows: ``{"messages": [{"role": "system" | "user" | "assistant",
  "content": ..., "weight": 0 | 1}, ...]}``.

Accepted containers (see ``../shared/seeds/001_*``):

* a :class:`~tunesmith.types.Dataset` or an iterable of :class:`TuningExample`;
* an iterable of ``{"text_input": ..., "output": ...}`` dicts, ``(input, output)`` tuples
  or 2-lists;
* a ``Mapping`` of columns (a pandas DataFrame included), columns chosen by
  ``input_key`` / ``output_key``;
* a CSV file: a local ``str`` / ``Path``, an http(s) URL, or a Google Sheets URL;
* a JSON file holding either of the above, and JSONL (one object per line).

:func:`validate_examples` holds the rules every example must pass (it is also what the
service runs on examples that arrive over HTTP). Errors name the data set (``training_data``,
or ``validation_data`` for a held-out set, through ``field=``), the row (1-based) and field.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .errors import InvalidArgument
from .records.conversations import MODEL, USER, Conversation, Turn
from .types import Dataset, TuningExample

MAX_INPUT_CHARS = 40_000
MAX_OUTPUT_CHARS = 5_000
MAX_EXAMPLES = 100_000
MAX_TURNS = 200
"""Turns in one conversation (the system instruction not counted)."""
MAX_TURN_CHARS = 40_000
"""Characters in one turn, or in a system instruction."""
FIELD = "training_data"  # how errors name the data; "validation_data" for a held-out set

_SHEETS = re.compile(r"^https?://docs\.google\.com/spreadsheets/d/([^/?#]+)")


def load_examples(
    data,
    input_key: str = "text_input",
    output_key: str = "output",
    *,
    field: str = FIELD,
    last_turn_only: bool = False,
) -> list[TuningExample | Conversation]:
    """Turn any accepted form of training data into validated examples.

    ``field`` names the argument in error messages (``"validation_data"`` for a held-out set).
    ``last_turn_only``: conversations learn from their last model turn only (by default every
    model turn not weighted 0 is learned from, as OpenAI does).
    """
    examples = _normalise(data, input_key, output_key, field)
    validate_examples(examples, field=field)
    if last_turn_only:
        examples = [e.last_turn_only() if isinstance(e, Conversation) else e for e in examples]
    return examples


def validate_examples(
    examples: Sequence[TuningExample | Conversation],
    *,
    max_examples: int = MAX_EXAMPLES,
    field: str = FIELD,
) -> None:
    """The rules for a training set; the first broken one is raised, naming row and field."""
    if len(examples) == 0:
        raise InvalidArgument(f"{field}: no examples were given")
    if max_examples and len(examples) > max_examples:
        raise InvalidArgument(
            f"{field}: {len(examples)} examples is over the limit of {max_examples}"
        )
    for row, ex in enumerate(examples, start=1):
        if isinstance(ex, Conversation):
            validate_conversation(ex, where=f"{field} row {row}", training=True)
            continue
        if not isinstance(ex, TuningExample):
            raise InvalidArgument(
                f"{field} row {row}: expected an example or a conversation, not {type(ex).__name__}"
            )
        for name, limit in (("text_input", MAX_INPUT_CHARS), ("output", MAX_OUTPUT_CHARS)):
            value = getattr(ex, name)
            if not isinstance(value, str):
                raise InvalidArgument(
                    f"{field} row {row}: '{name}' must be a string, not {type(value).__name__}"
                )
            if not value.strip():
                raise InvalidArgument(f"{field} row {row}: '{name}' is empty")
            if len(value) > limit:
                raise InvalidArgument(
                    f"{field} row {row}: '{name}' has {len(value)} characters, "
                    f"over the limit of {limit}"
                )


def validate_conversation(conv: Conversation, *, where: str, training: bool) -> None:
    """The rules for one conversation, for training (ends on a model turn that is learned
    from) or for generation (ends on a user turn). Turns count from 1, the system
    instruction not counted; errors name ``where``, the turn and the field."""
    turns = conv.turns
    if not isinstance(conv.system_instruction, str):
        raise InvalidArgument(f"{where}: 'systemInstruction' must be text")
    if len(conv.system_instruction) > MAX_TURN_CHARS:
        raise InvalidArgument(
            f"{where}: 'systemInstruction' has {len(conv.system_instruction)} characters, "
            f"over the limit of {MAX_TURN_CHARS}"
        )
    if not turns:
        raise InvalidArgument(f"{where}: the conversation has no turns")
    if len(turns) > MAX_TURNS:
        raise InvalidArgument(
            f"{where}: {len(turns)} turns is over the limit of {MAX_TURNS} per conversation"
        )
    for n, turn in enumerate(turns, start=1):
        at = f"{where}, turn {n}"
        if turn.role not in (USER, MODEL):
            raise InvalidArgument(
                f"{at}: unknown 'role' {turn.role!r} (use user or model; OpenAI's assistant "
                "is model, and system belongs only before the first turn)"
            )
        if not isinstance(turn.text, str):
            raise InvalidArgument(
                f"{at}: the text must be a string, not {type(turn.text).__name__}"
            )
        if not turn.text.strip() and (training or turn.role == USER):
            raise InvalidArgument(f"{at}: the {turn.role} turn's text is empty")
        if len(turn.text) > MAX_TURN_CHARS:
            raise InvalidArgument(
                f"{at}: the text has {len(turn.text)} characters, over the limit of "
                f"{MAX_TURN_CHARS}"
            )
        if turn.weight is not None:
            if turn.role != MODEL:
                raise InvalidArgument(
                    f"{at}: 'weight' is only for model (assistant) turns, not {turn.role} turns"
                )
            if isinstance(turn.weight, bool) or turn.weight not in (0, 1):
                raise InvalidArgument(f"{at}: 'weight' must be 0 or 1, not {turn.weight!r}")
        if n == 1 and turn.role != USER:
            raise InvalidArgument(f"{at}: a conversation starts with a user turn, not {turn.role}")
        if n > 1 and turn.role == MODEL and turns[n - 2].role == MODEL:
            raise InvalidArgument(f"{at}: two model (assistant) turns in a row")
    last = turns[-1].role
    if training:
        if last != MODEL:
            raise InvalidArgument(
                f"{where}, turn {len(turns)}: the conversation ends on a user turn; a training "
                "conversation ends with the model's answer"
            )
        if not any(conv.learns_from(i) for i in range(len(turns))):
            raise InvalidArgument(
                f"{where}: every model turn has weight 0, so there is nothing to learn from"
            )
    elif last != USER:
        raise InvalidArgument(
            f"{where}, turn {len(turns)}: the conversation must end with a user turn "
            "for the model to answer"
        )


def joined_answers(conv: Conversation) -> Conversation:
    """Model turns that follow each other joined into one (for generation: a client that
    streamed an answer may keep each chunk as a model turn of its history, as google-genai's
    chat session does); a conversation without such turns comes back as it is."""
    turns: list[Turn] = []
    for turn in conv.turns:
        if turns and turn.role == MODEL and turns[-1].role == MODEL:
            turns[-1] = Turn(MODEL, turns[-1].text + turn.text, turns[-1].weight)
        else:
            turns.append(turn)
    return conv if len(turns) == len(conv.turns) else Conversation(turns, conv.system_instruction)


def examples_from_records(
    records: Iterable,
    input_key: str = "text_input",
    output_key: str = "output",
    *,
    field: str = FIELD,
) -> list[TuningExample | Conversation]:
    """Rows of dicts (example, Vertex or OpenAI shape), tuples, 2-lists, TuningExamples or
    Conversations into examples (not yet validated)."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise InvalidArgument(f"{field}: expected a list of examples, not {type(records).__name__}")
    examples: list[TuningExample | Conversation] = []
    for row, rec in enumerate(records, start=1):
        if isinstance(rec, (TuningExample, Conversation)):
            examples.append(rec)
        elif isinstance(rec, Mapping) and is_conversation_row(rec, input_key):
            examples.append(conversation_from_json(rec, where=f"{field} row {row}"))
        elif isinstance(rec, Mapping):
            values = []
            for key in (input_key, output_key):
                if key not in rec:
                    found = ", ".join(repr(k) for k in rec) or "none"
                    raise InvalidArgument(f"{field} row {row}: missing key '{key}' (found {found})")
                values.append(rec[key])
            examples.append(TuningExample(*values))
        elif isinstance(rec, (tuple, list)):
            if len(rec) != 2:
                raise InvalidArgument(
                    f"{field} row {row}: expected (input, output), got {len(rec)} items"
                )
            examples.append(TuningExample(rec[0], rec[1]))
        else:
            raise InvalidArgument(
                f"{field} row {row}: expected a dict or an (input, output) pair, "
                f"not {type(rec).__name__}"
            )
    return examples


def is_conversation_row(row: Mapping, input_key: str = "text_input") -> bool:
    """Whether a row is in Vertex's (``contents``) or OpenAI's (``messages``) shape."""
    return input_key not in row and ("contents" in row or "messages" in row)


def conversation_from_json(row, *, where: str = FIELD) -> Conversation:
    """One row in Vertex's shape (``contents``, ``systemInstruction``, camelCase or
    snake_case) or OpenAI's (``messages``) into a :class:`Conversation` (not yet validated).

    Errors name ``where`` (e.g. ``training_data row 3``), the turn and the field.
    """
    if not isinstance(row, Mapping):
        raise InvalidArgument(f"{where}: expected an object, not {type(row).__name__}")
    if "messages" in row and "contents" not in row:
        return _from_messages(row["messages"], where)
    contents = row.get("contents")
    if not isinstance(contents, list):
        raise InvalidArgument(f"{where}: 'contents' must be a list of turns")
    system = row.get("systemInstruction", row.get("system_instruction"))
    system_text = "" if system is None else _content_text(system, f"{where}: 'systemInstruction'")
    turns = []
    for n, content in enumerate(contents, start=1):
        at = f"{where}, turn {n}"
        if not isinstance(content, Mapping):
            raise InvalidArgument(f"{at}: expected an object with 'role' and 'parts'")
        role = content.get("role", USER)  # Google's default for a content without a role
        if role not in (USER, MODEL):
            raise InvalidArgument(
                f"{at}: unknown 'role' {role!r} (Vertex's contents take user or model; "
                "the system instruction goes in 'systemInstruction')"
            )
        turns.append(Turn(role, _content_text(content, f"{at}: 'parts'"), content.get("weight")))
    return Conversation(turns, system_text)


def _from_messages(messages, where: str) -> Conversation:
    if not isinstance(messages, list):
        raise InvalidArgument(f"{where}: 'messages' must be a list of messages")
    system: list[str] = []
    turns: list[Turn] = []
    for n, message in enumerate(messages, start=1):
        at = f"{where}, messages[{n}]"
        if not isinstance(message, Mapping):
            raise InvalidArgument(f"{at}: expected an object with 'role' and 'content'")
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else _openai_parts(content, f"{at}: 'content'")
        if role in ("system", "developer"):
            if turns:
                raise InvalidArgument(
                    f"{at}: a {role} message must come before the first user message"
                )
            if "weight" in message:
                raise InvalidArgument(f"{at}: 'weight' is only for assistant messages")
            system.append(text)
        elif role in ("user", "assistant"):
            if role == "user" and "weight" in message:
                raise InvalidArgument(
                    f"{at} (turn {len(turns) + 1}): 'weight' is only for assistant messages"
                )
            turns.append(Turn(USER if role == "user" else MODEL, text, message.get("weight")))
        else:
            raise InvalidArgument(
                f"{at} (turn {len(turns) + 1}): unknown 'role' {role!r} "
                "(use system, user or assistant)"
            )
    return Conversation(turns, "\n\n".join(system))


def _content_text(content, where: str) -> str:
    """The text of a Google ``Content`` (``{"parts": [{"text"}]}``) or a plain string."""
    if isinstance(content, str):
        return content
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if isinstance(parts, Mapping):
        parts = [parts]
    if not isinstance(parts, list) or not parts:
        raise InvalidArgument(f"{where} must be a list of parts with text")
    texts = []
    for part in parts:
        text = part.get("text") if isinstance(part, Mapping) else None
        if not isinstance(text, str):
            raise InvalidArgument(f"{where}: every part needs 'text' (only text is tuned on)")
        texts.append(text)
    return "".join(texts)


def _openai_parts(content, where: str) -> str:
    if not isinstance(content, list) or not content:
        raise InvalidArgument(f"{where} must be text or a list of text parts")
    texts = []
    for part in content:
        text = part.get("text") if isinstance(part, Mapping) else None
        if not isinstance(text, str) or part.get("type", "text") != "text":
            raise InvalidArgument(f'{where}: every part must be {{"type": "text", "text": ...}}')
        texts.append(text)
    return "".join(texts)


def examples_from_columns(
    columns: Mapping,
    input_key: str = "text_input",
    output_key: str = "output",
    *,
    field: str = FIELD,
) -> list[TuningExample]:
    """A mapping of columns (dict of lists, DataFrame) into examples (not yet validated)."""
    for key in (input_key, output_key):
        if key not in columns:
            found = ", ".join(repr(str(k)) for k in columns.keys()) or "none"
            raise InvalidArgument(f"{field}: missing column '{key}' (found {found})")
    for key in (input_key, output_key):
        column = columns[key]
        if isinstance(column, (str, bytes, Mapping)) or not isinstance(column, Iterable):
            raise InvalidArgument(
                f"{field}: column '{key}' must be a list of values, not {type(column).__name__}"
            )
    inputs, outputs = list(columns[input_key]), list(columns[output_key])
    if len(inputs) != len(outputs):
        raise InvalidArgument(
            f"{field}: column '{input_key}' has {len(inputs)} rows "
            f"but '{output_key}' has {len(outputs)}"
        )
    return [TuningExample(_cell(i), _cell(o)) for i, o in zip(inputs, outputs, strict=True)]


def parse_file_text(
    text: str,
    kind: str,
    input_key: str = "text_input",
    output_key: str = "output",
    *,
    field: str = FIELD,
) -> list[TuningExample | Conversation]:
    """The contents of a CSV, JSON or JSONL file into examples (not yet validated).

    Shared by local paths, URLs and uploads (the CLI and the web console).
    """
    if kind == "csv":
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            if reader.fieldnames is None:
                raise InvalidArgument(f"{field}: the CSV file is empty")
            rows = list(reader)
        except csv.Error as e:
            raise InvalidArgument(
                f"{field}: not a valid CSV file (line {reader.line_num}: {e})"
            ) from None
        return examples_from_records(
            [{k: v for k, v in r.items() if k is not None} for r in rows],
            input_key,
            output_key,
            field=field,
        )
    if kind == "jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InvalidArgument(
                        f"{field} line {line_no}: not valid JSON ({e.msg})"
                    ) from None
                except RecursionError:
                    raise InvalidArgument(
                        f"{field} line {line_no}: JSON nested too deeply"
                    ) from None
        return examples_from_records(records, input_key, output_key, field=field)
    if kind == "json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgument(
                f"{field}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
            ) from None
        except RecursionError:
            raise InvalidArgument(f"{field}: JSON nested too deeply") from None
        if not isinstance(value, (list, dict)):
            # Never a path or URL: what a file holds must not make us open another one.
            raise InvalidArgument(
                f"{field}: a JSON file must hold a list of examples or an object, "
                f"not {type(value).__name__}"
            )
        return _normalise(value, input_key, output_key, field)
    raise InvalidArgument(f"{field}: unknown file type '{kind}' (use csv, json or jsonl)")


def file_kind(name: str) -> str:
    """csv, json or jsonl from a file name or URL path; CSV when nothing says otherwise."""
    lower = name.lower().split("?", 1)[0]
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lower.endswith(".json"):
        return "json"
    return "csv"


def _normalise(
    data, input_key: str, output_key: str, field: str
) -> list[TuningExample | Conversation]:
    if isinstance(data, Dataset):
        return list(data.examples)
    if isinstance(data, Conversation):
        raise InvalidArgument(f"{field}: pass a list of conversations, not one")
    if isinstance(data, (str, Path)):
        return _from_location(str(data), input_key, output_key, field)
    if isinstance(data, Mapping) or _is_dataframe(data):
        # A JSON object may hold the examples under "examples" (Google's Dataset shape).
        if isinstance(data, Mapping) and is_conversation_row(data, input_key):
            raise InvalidArgument(
                f"{field}: this is one conversation; pass a list of them (or a JSONL file)"
            )
        if isinstance(data, Mapping) and "examples" in data and input_key not in data:
            inner = data["examples"]
            if isinstance(inner, Mapping) and "examples" in inner:
                inner = inner["examples"]
            return examples_from_records(inner, input_key, output_key, field=field)
        return [*examples_from_columns(data, input_key, output_key, field=field)]
    if isinstance(data, (bytes, bytearray)):
        raise InvalidArgument(f"{field}: pass a file path, URL or examples, not bytes")
    if isinstance(data, Iterable):
        return examples_from_records(data, input_key, output_key, field=field)
    raise InvalidArgument(
        f"{field}: unsupported type {type(data).__name__}; pass examples, a mapping "
        "of columns, or a CSV/JSON/JSONL file"
    )


def _from_location(
    location: str, input_key: str, output_key: str, field: str
) -> list[TuningExample | Conversation]:
    if location.startswith(("http://", "https://")):
        url = sheets_csv_url(location) or location
        kind = "csv" if url != location else file_kind(url)
        return parse_file_text(_download(url, field), kind, input_key, output_key, field=field)
    path = Path(location).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidArgument(f"{field}: file not found: {location}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{field}: cannot read {location}: {e}") from None
    return parse_file_text(text, file_kind(path.name), input_key, output_key, field=field)


def sheets_csv_url(url: str) -> str | None:
    """A Google Sheets link rewritten to its CSV export, keeping the sheet (``gid``)."""
    m = _SHEETS.match(url)
    if not m:
        return None
    gid = re.search(r"[#&?]gid=(\d+)", url)
    export = f"https://docs.google.com/spreadsheets/d/{m.group(1)}/export?format=csv"
    return export + (f"&gid={gid.group(1)}" if gid else "")


def _download(url: str, field: str) -> str:
    import httpx

    try:
        resp = httpx.get(url, follow_redirects=True, timeout=60)
        resp.raise_for_status()
    except httpx.HTTPError as e:
        raise InvalidArgument(f"{field}: cannot download {url}: {e}") from None
    return resp.text


def _is_dataframe(data) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


def _cell(value):
    # pandas gives NaN for empty CSV cells; report it as empty rather than as a float.
    if isinstance(value, float) and value != value:
        return ""
    return value
