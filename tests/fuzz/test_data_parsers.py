"""Property tests for the training-data parsers: any input gives examples or InvalidArgument.

Never another exception, never a file read or a download because of what a file holds.
"""

from __future__ import annotations

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith import data
from tunesmith.errors import InvalidArgument
from tunesmith.types import TuningExample

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
keys = st.sampled_from(["text_input", "output", "examples", "input", ""]) | st.text(max_size=8)
records = st.dictionaries(keys, json_values, max_size=4) | st.lists(json_values, max_size=3)
documents = (
    json_values
    | st.lists(records, max_size=5)
    | st.dictionaries(keys, json_values | st.lists(json_values, max_size=4), max_size=4)
    | st.fixed_dictionaries({"examples": json_values | st.lists(records, max_size=4)})
)


def outcome(fn, *args) -> list[TuningExample] | None:
    """The examples, or None for a clear refusal; anything else fails the test."""
    try:
        examples = fn(*args)
    except InvalidArgument as e:
        assert e.message.startswith("training_data"), e.message
        return None
    assert isinstance(examples, list)
    assert all(isinstance(ex, TuningExample) for ex in examples)
    try:
        data.validate_examples(examples)
    except InvalidArgument as e:
        assert e.message.startswith("training_data"), e.message
    return examples


@FAST
@given(st.text(max_size=300))
def test_any_text_in_any_format(text):
    for kind in ("csv", "json", "jsonl"):
        outcome(data.parse_file_text, text, kind)


@FAST
@given(documents)
def test_any_json_document(doc):
    text = json.dumps(doc)
    outcome(data.parse_file_text, text, "json")
    outcome(data.parse_file_text, "\n".join(json.dumps(d) for d in (doc, doc)), "jsonl")


@FAST
@given(st.lists(st.lists(st.text(max_size=10), min_size=0, max_size=4), max_size=6))
def test_any_csv_table(rows):
    buf = io.StringIO()
    csv.writer(buf).writerows([["text_input", "output"], *rows])
    examples = outcome(data.parse_file_text, buf.getvalue(), "csv")
    if examples is not None:
        assert len(examples) == sum(1 for r in rows if r)  # csv skips blank lines


@FAST
@given(documents)
def test_any_python_value(value):
    if isinstance(value, str):
        return  # a str names a file or URL on purpose (the SDK's documented form)
    outcome(data.load_examples, value)
    outcome(data.examples_from_records, value if isinstance(value, list) else [value])
    if isinstance(value, dict):
        outcome(data.examples_from_columns, value)


@FAST
@given(st.text(min_size=1, max_size=40))
def test_a_json_string_is_never_opened_as_a_path(name):
    # A JSON file that holds only a string must not make the server read that path or URL.
    for target in (name, "/etc/passwd", "http://127.0.0.1:1/x.csv"):
        assert outcome(data.parse_file_text, json.dumps(target), "json") is None


def test_deep_nesting_and_huge_fields_are_refused():
    assert outcome(data.parse_file_text, "[" * 100_000 + "]" * 100_000, "json") is None
    huge = "text_input,output\n" + "x" * 200_000 + ",y\n"
    assert outcome(data.parse_file_text, huge, "csv") is None
