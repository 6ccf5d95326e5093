"""Every training-data form of Google's create_tuned_model, and every validation error."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pandas as pd
import pytest

from tunesmith import Dataset, InvalidArgument, TuningExample
from tunesmith.data import load_examples, sheets_csv_url

PAIRS = [("1", "2"), ("3", "4"), ("twenty two", "twenty three")]
EXPECTED = [TuningExample(i, o) for i, o in PAIRS]


def test_dataset_and_examples():
    assert load_examples(Dataset(EXPECTED)) == EXPECTED
    assert load_examples(EXPECTED) == EXPECTED


def test_dicts_tuples_and_lists():
    assert load_examples([{"text_input": i, "output": o} for i, o in PAIRS]) == EXPECTED
    assert load_examples(PAIRS) == EXPECTED
    assert load_examples([list(p) for p in PAIRS]) == EXPECTED
    assert load_examples(iter(PAIRS)) == EXPECTED  # any iterable, even a one-shot one


def test_mapping_of_columns_with_keys():
    columns = {"q": [i for i, _ in PAIRS], "a": [o for _, o in PAIRS]}
    assert load_examples(columns, input_key="q", output_key="a") == EXPECTED
    assert load_examples(pd.DataFrame(columns), input_key="q", output_key="a") == EXPECTED


def test_csv_json_jsonl_files(tmp_path: Path):
    pd.DataFrame({"text_input": [i for i, _ in PAIRS], "output": [o for _, o in PAIRS]}).to_csv(
        tmp_path / "d.csv", index=False
    )
    (tmp_path / "rows.json").write_text(
        json.dumps([{"text_input": i, "output": o} for i, o in PAIRS])
    )
    (tmp_path / "cols.json").write_text(
        json.dumps({"text_input": [i for i, _ in PAIRS], "output": [o for _, o in PAIRS]})
    )
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps({"text_input": i, "output": o}) for i, o in PAIRS) + "\n"
    )
    for name in ("d.csv", "rows.json", "cols.json", "d.jsonl"):
        assert load_examples(tmp_path / name) == EXPECTED, name
        assert load_examples(str(tmp_path / name)) == EXPECTED, name


def test_csv_over_http(tmp_path: Path):
    (tmp_path / "data.csv").write_text(
        "text_input,output\n" + "".join(f'"{i}","{o}"\n' for i, o in PAIRS)
    )

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.csv"
        assert load_examples(url) == EXPECTED
        with pytest.raises(InvalidArgument, match="cannot download"):
            load_examples(url.replace("data.csv", "missing.csv"))
    finally:
        server.shutdown()


def test_google_sheets_url_becomes_csv_export():
    url = "https://docs.google.com/spreadsheets/d/1AbC_xyz/edit#gid=42"
    assert sheets_csv_url(url) == (
        "https://docs.google.com/spreadsheets/d/1AbC_xyz/export?format=csv&gid=42"
    )
    assert sheets_csv_url("https://example.com/a.csv") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "no examples"),
        ([{"text_input": "1"}], "row 1: missing key 'output'"),
        ([("1", "2"), {"input": "3", "output": "4"}], "row 2: missing key 'text_input'"),
        ([("1", "2"), ("3", 4)], "row 2: 'output' must be a string"),
        ([("1", "2"), ("", "4")], "row 2: 'text_input' is empty"),
        ([("1", "   ")], "row 1: 'output' is empty"),
        ([("x" * 40_001, "y")], "row 1: 'text_input' has 40001 characters"),
        ([("x", "y" * 5_001)], "row 1: 'output' has 5001 characters"),
        ([("1", "2", "3")], "row 1: expected \\(input, output\\)"),
        ([42], "row 1: expected a dict"),
        ({"text_input": ["1"], "answer": ["2"]}, "missing column 'output'"),
        ({"text_input": ["1", "2"], "output": ["2"]}, "has 2 rows"),
        (12, "unsupported type int"),
    ],
)
def test_validation_names_row_and_field(data, message):
    with pytest.raises(InvalidArgument, match=message):
        load_examples(data)


def test_unreadable_and_malformed_files(tmp_path: Path):
    with pytest.raises(InvalidArgument, match="file not found"):
        load_examples(tmp_path / "nope.csv")
    (tmp_path / "bad.jsonl").write_text('{"text_input": "1", "output": "2"}\n{oops\n')
    with pytest.raises(InvalidArgument, match="line 2: not valid JSON"):
        load_examples(tmp_path / "bad.jsonl")
    (tmp_path / "bad.json").write_text("[{]")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        load_examples(tmp_path / "bad.json")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_examples(tmp_path / "binary.csv")
    (tmp_path / "empty-cell.csv").write_text("text_input,output\n1,2\n3,\n")
    with pytest.raises(InvalidArgument, match="row 2: 'output' is empty"):
        load_examples(tmp_path / "empty-cell.csv")
