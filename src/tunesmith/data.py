"""Training data: every form Google's ``create_tuned_model`` accepted, turned into one list.

Accepted forms (see ``../shared/seeds/001_*``):

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
from .types import Dataset, TuningExample

MAX_INPUT_CHARS = 40_000
MAX_OUTPUT_CHARS = 5_000
MAX_EXAMPLES = 100_000
FIELD = "training_data"  # how errors name the data; "validation_data" for a held-out set

_SHEETS = re.compile(r"^https?://docs\.google\.com/spreadsheets/d/([^/?#]+)")


def load_examples(
    data, input_key: str = "text_input", output_key: str = "output", *, field: str = FIELD
) -> list[TuningExample]:
    """Turn any accepted form of training data into validated examples.

    ``field`` names the argument in error messages (``"validation_data"`` for a held-out set).
    """
    examples = _normalise(data, input_key, output_key, field)
    validate_examples(examples, field=field)
    return examples


def validate_examples(
    examples: Sequence[TuningExample], *, max_examples: int = MAX_EXAMPLES, field: str = FIELD
) -> None:
    """The rules for a training set; the first broken one is raised, naming row and field."""
    if len(examples) == 0:
        raise InvalidArgument(f"{field}: no examples were given")
    if max_examples and len(examples) > max_examples:
        raise InvalidArgument(
            f"{field}: {len(examples)} examples is over the limit of {max_examples}"
        )
    for row, ex in enumerate(examples, start=1):
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


def examples_from_records(
    records: Iterable,
    input_key: str = "text_input",
    output_key: str = "output",
    *,
    field: str = FIELD,
) -> list[TuningExample]:
    """Rows of dicts, tuples, 2-lists or TuningExamples into examples (not yet validated)."""
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise InvalidArgument(f"{field}: expected a list of examples, not {type(records).__name__}")
    examples = []
    for row, rec in enumerate(records, start=1):
        if isinstance(rec, TuningExample):
            examples.append(rec)
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
) -> list[TuningExample]:
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


def _normalise(data, input_key: str, output_key: str, field: str) -> list[TuningExample]:
    if isinstance(data, Dataset):
        return list(data.examples)
    if isinstance(data, (str, Path)):
        return _from_location(str(data), input_key, output_key, field)
    if isinstance(data, Mapping) or _is_dataframe(data):
        # A JSON object may hold the examples under "examples" (Google's Dataset shape).
        if isinstance(data, Mapping) and "examples" in data and input_key not in data:
            inner = data["examples"]
            if isinstance(inner, Mapping) and "examples" in inner:
                inner = inner["examples"]
            return examples_from_records(inner, input_key, output_key, field=field)
        return examples_from_columns(data, input_key, output_key, field=field)
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
) -> list[TuningExample]:
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
