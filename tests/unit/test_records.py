import json
import re

import pytest

from superalign.records import (SCHEMA_VERSION, Evaluation, Metric, Preference, RecordFileError, read_jsonl,
                                write_jsonl)


def _pref(i: int) -> Preference:
    return Preference(task_id=f"t{i}", prompt=[{"role": "user", "content": "hi"}], chosen="a", rejected="b",
                      labeler="sim:test", confidence=0.7)


def test_mixed_records_round_trip(tmp_path):
    records = [_pref(0), Metric(stage="baseline", name="gold.mean", value=0.5, ci_low=0.4, ci_high=0.6, n=10),
               Evaluation(stage="baseline", model="m", task_id="t", kind="fact", category="capitals",
                          prompt=[{"role": "user", "content": "q"}], response="r", gold=1.0, passed=True)]
    path = write_jsonl(tmp_path / "r.jsonl", records)
    assert read_jsonl(path) == records
    assert all(json.loads(line)["schema_version"] == SCHEMA_VERSION for line in path.read_text().splitlines())


def test_append_and_type_filter(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [_pref(0)])
    write_jsonl(path, [_pref(1)], append=True)
    assert [p.task_id for p in read_jsonl(path, Preference)] == ["t0", "t1"]
    with pytest.raises(RecordFileError):
        read_jsonl(path, Metric)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_pref(0).model_dump_json() + "\n" + '{"type": "preference", "chosen": 3}\n')
    with pytest.raises(RecordFileError, match=r"bad.jsonl:2"):
        read_jsonl(path)
    path.write_text("not json\n")
    with pytest.raises(RecordFileError, match=r"bad.jsonl:1"):
        read_jsonl(path)


def test_unknown_fields_are_rejected():
    with pytest.raises(ValueError):
        Preference.model_validate({**_pref(0).model_dump(), "surprise": 1})


@pytest.mark.parametrize("content, message", [
    (b'{"a": "\xff"}\n', "not UTF-8 text"),
    (b'{"a": "Q \\ud800"}\n', "lone surrogate"),
    (b'{"a": ' + b"9" * 5000 + b"}\n", "more than 4,300 digits"),
    (b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
])
def test_jsonl_objects_names_file_and_line_for_what_json_loads_cannot_take(tmp_path, content, message):
    """The shared JSONL reader (preference files, studio items, datasets): one error naming file:line, no crash."""
    from superalign.records import jsonl_objects

    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"ok": 1}\n' + content)
    with pytest.raises(RecordFileError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(message)):
        list(jsonl_objects(path))
