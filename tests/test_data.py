"""Tests for suite.data (loading, validation, normalisation) and the shipped smoke data."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline import data as data_cli
from suite import data
from suite.data import DataError
from suite.io import read_json, read_jsonl

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "workflow" / "resources" / "smoke"
GENERATOR = ROOT / "workflow" / "scripts" / "make_smoke_data.py"
HH_ODDITIES = ("empty_final_turn", "consecutive_turns", "whitespace", "starts_with_assistant", "human_inside_turn")
SMOKE_FILES = (
    "ultrafeedback_smoke.jsonl",
    "hh_smoke.jsonl.gz",
    "ultrachat_smoke.jsonl",
    "alpaca_eval_smoke.json",
    "mt_bench_smoke_question.jsonl",
    "arena_hard_smoke_question.jsonl",
    "arena_hard_v2_smoke_question.jsonl",
    "arena_hard_v2_smoke_baseline_hard.jsonl",
    "arena_hard_v2_smoke_baseline_creative.jsonl",
    *(f"hh_oddities/{kind}.jsonl.gz" for kind in HH_ODDITIES),
)
HH_GOOD = 80  # the ordinary transcripts of hh_smoke.jsonl.gz; the first of each oddity fixture follows them
HH_PLAIN = 3  # each oddity fixture starts with three ordinary transcripts


# --------------------------------------------------------------------------- helpers


def uf_record(prompt: str = "How do I boil an egg?", answer: str = "Boil it for eight minutes.") -> dict[str, Any]:
    user = {"role": "user", "content": prompt}
    chosen = [user, {"role": "assistant", "content": answer}]
    rejected = [dict(user), {"role": "assistant", "content": "No idea."}]
    return {
        "prompt": prompt,
        "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
        "chosen": chosen,
        "rejected": rejected,
        "messages": copy.deepcopy(chosen),
        "score_chosen": 8.0,
        "score_rejected": 3.0,
    }


def hh_record(final_chosen: str = "Sure, here is how.", final_rejected: str = "No.") -> dict[str, str]:
    context = "\n\nHuman: Hi there.\n\nAssistant: Hello! How can I help?\n\nHuman: Help me plan a picnic."
    return {
        "chosen": f"{context}\n\nAssistant: {final_chosen}",
        "rejected": f"{context}\n\nAssistant: {final_rejected}",
    }


def uc_record(prompt: str = "Tell me about tea.") -> dict[str, Any]:
    return {
        "prompt": prompt,
        "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": "Tea is a drink."},
        ],
    }


def ae_record(instruction: str = "Name a fruit.") -> dict[str, str]:
    return {"instruction": instruction, "output": "An apple.", "generator": "ref", "dataset": "test"}


GOOD = {"ultrafeedback": uf_record, "hh": hh_record, "ultrachat": uc_record}
KIND_OF = {"ultrafeedback": "preference", "hh": "preference", "ultrachat": "sft"}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_records(path: Path, records: list[Any]) -> Path:
    return write_lines(path, [json.dumps(r) for r in records])


def prepare_file(kind: str, fmt: str, path: Path, out: Path, **kwargs: Any) -> int:
    return data.prepare(kind, {"format": fmt, "path": str(path)}, out, **kwargs)


# --------------------------------------------------------------------------- shipped smoke data


@pytest.mark.parametrize(
    ("kind", "fmt", "name", "count"),
    [
        ("preference", "ultrafeedback", "ultrafeedback_smoke.jsonl", 240),
        ("sft", "ultrachat", "ultrachat_smoke.jsonl", 300),
        ("sft", "ultrafeedback", "ultrafeedback_smoke.jsonl", 240),
        ("prompts", "hh", "hh_test_smoke.jsonl", 20),
        ("alpaca_eval", "alpaca_eval", "alpaca_eval_smoke.json", 24),
    ],
)
def test_smoke_files_normalise(tmp_path: Path, kind: str, fmt: str, name: str, count: int) -> None:
    suffix = ".json" if kind == "alpaca_eval" else ".jsonl"
    out = tmp_path / f"out{suffix}"
    assert prepare_file(kind, fmt, SMOKE / name, out) == count
    written = read_json(out) if kind == "alpaca_eval" else read_jsonl(out)
    assert len(written) == count
    if kind != "alpaca_eval":
        ids = [r["id"] for r in written]
        assert ids[0] == f"{fmt}-000000"
        assert len(set(ids)) == count


def test_smoke_ultrafeedback_shape() -> None:
    records = read_jsonl(SMOKE / "ultrafeedback_smoke.jsonl")
    assert len({r["prompt"] for r in records}) == len(records)
    shared = 0
    for r in records:
        assert list(r) == [
            "prompt",
            "prompt_id",
            "chosen",
            "rejected",
            "messages",
            "score_chosen",
            "score_rejected",
        ]
        assert r["prompt_id"] == hashlib.sha256(r["prompt"].encode()).hexdigest()
        assert r["messages"] == r["chosen"]
        assert r["chosen"][0] == r["rejected"][0] == {"content": r["prompt"], "role": "user"}
        assert isinstance(r["score_chosen"], float)
        assert r["score_chosen"] > r["score_rejected"]
        assert r["chosen"][1]["content"] != r["rejected"][1]["content"]
        shared += r["chosen"][1]["content"].split(".")[0] == r["rejected"][1]["content"].split(".")[0]
    assert shared == len(records)  # chosen and rejected share their opening sentence


def test_smoke_hh_has_multi_turn_and_refusals() -> None:
    records = read_jsonl(SMOKE / "hh_smoke.jsonl.gz")
    assert all(list(r) == ["chosen", "rejected"] for r in records)
    oddities = [read_jsonl(SMOKE / f"hh_oddities/{kind}.jsonl.gz")[HH_PLAIN] for kind in HH_ODDITIES]
    assert records[HH_GOOD:] == oddities
    records = records[:HH_GOOD]
    assert all(r["chosen"].startswith("\n\nHuman: ") for r in records)
    assert sum(r["chosen"].count("\n\nHuman: ") > 1 for r in records) >= 20
    assert sum("I'm sorry, but I can't help" in r["chosen"] for r in records) == 24
    assert sum(r["rejected"].rsplit("\n\nAssistant: ", 1)[1].startswith("Sure, just") for r in records) == 24


def test_smoke_ultrachat_shape() -> None:
    records = read_jsonl(SMOKE / "ultrachat_smoke.jsonl")
    lengths = {len(r["messages"]) for r in records}
    assert lengths == {2, 4}
    for r in records:
        assert r["messages"][0] == {"content": r["prompt"], "role": "user"}
        assert r["prompt_id"] == hashlib.sha256(r["prompt"].encode()).hexdigest()


def test_smoke_benchmark_questions_shape() -> None:
    mt = read_jsonl(SMOKE / "mt_bench_smoke_question.jsonl")
    assert [q["question_id"] for q in mt] == list(range(1, 9))
    assert {q["category"] for q in mt} == {
        "writing",
        "roleplay",
        "reasoning",
        "math",
        "coding",
        "extraction",
        "stem",
        "humanities",
    }
    for q in mt:
        assert len(q["turns"]) == 2 and all(isinstance(t, str) and t for t in q["turns"])
        assert ("reference" in q) == (q["category"] in {"math", "reasoning", "coding"})
        if "reference" in q:
            assert len(q["reference"]) == 2
    arena = read_jsonl(SMOKE / "arena_hard_smoke_question.jsonl")
    assert len(arena) == 10
    assert len({q["question_id"] for q in arena}) == 10
    for q in arena:
        assert set(q) == {"question_id", "category", "cluster", "turns"}
        int(q["question_id"], 16)
        assert q["category"] == "arena-hard-v0.1"
        assert len(q["turns"]) == 1 and q["turns"][0]["content"]


def test_smoke_alpaca_eval_shape() -> None:
    records = read_json(SMOKE / "alpaca_eval_smoke.json")
    assert len(records) == 24
    assert all(r["generator"] == "smoke_reference" for r in records)


def test_smoke_total_size() -> None:
    assert sum((SMOKE / name).stat().st_size for name in SMOKE_FILES) < 1_500_000


def content(path: Path) -> bytes:
    """A file's content; a .gz is compared decompressed (zlib builds may compress the same bytes differently)."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        subprocess.run(
            [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path / run)],
            check=True,
            capture_output=True,
        )
    fresh_files = (tmp_path / "a").rglob("*")
    assert sorted(str(p.relative_to(tmp_path / "a")) for p in fresh_files if p.is_file()) == sorted(SMOKE_FILES)
    for name in SMOKE_FILES:
        fresh = content(tmp_path / "a" / name)
        assert fresh == content(tmp_path / "b" / name), name
        assert fresh == content(SMOKE / name), f"{name} is stale: rerun {GENERATOR.name}"
        if name.endswith(".gz"):  # as HH ships it, and without a name or time that would change on every run
            assert (tmp_path / "a" / name).read_bytes()[:10] == (tmp_path / "b" / name).read_bytes()[:10]


# --------------------------------------------------------------------------- malformed input


def _set(record: dict, path: tuple, value: Any) -> dict:
    record = copy.deepcopy(record)
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return record


def _drop(record: dict, key: str) -> dict:
    record = copy.deepcopy(record)
    del record[key]
    return record


MALFORMED = [
    # (id, format, bad record (or raw line), expected field text, expected problem text)
    ("missing-field", "ultrafeedback", _drop(uf_record(), "rejected"), "field 'rejected'", "missing"),
    (
        "non-string",
        "ultrafeedback",
        _set(uf_record(), ("chosen", 1, "content"), 5),
        "'chosen[1].content'",
        "string",
    ),
    (
        "empty",
        "ultrafeedback",
        _set(uf_record(), ("chosen", 1, "content"), "  \n"),
        "'chosen[1].content'",
        "empty",
    ),
    ("not-a-list", "ultrafeedback", _set(uf_record(), ("chosen",), "hello"), "'chosen'", "list"),
    (
        "missing-role",
        "ultrafeedback",
        _set(uf_record(), ("chosen", 0), {"content": "How do I boil an egg?"}),
        "'chosen[0].role'",
        "missing",
    ),
    (
        "unknown-role",
        "ultrafeedback",
        _set(uf_record(), ("rejected", 0, "role"), "bot"),
        "'rejected[0].role'",
        "bot",
    ),
    (
        "role-order",
        "ultrafeedback",
        _set(
            uf_record(),
            ("chosen",),
            [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],
        ),
        "'chosen[0].role'",
        "expected 'user'",
    ),
    (
        "last-not-assistant",
        "ultrafeedback",
        _set(uf_record(), ("rejected", 1, "role"), "user"),
        "'rejected[1].role'",
        "expected 'assistant'",
    ),
    (
        "prompts-differ",
        "ultrafeedback",
        _set(uf_record(), ("rejected", 0, "content"), "A different question?"),
        "'rejected[0].content'",
        "share the prompt",
    ),
    ("bad-score", "ultrafeedback", _set(uf_record(), ("score_chosen",), "high"), "'score_chosen'", "number"),
    ("hh-missing", "hh", _drop(hh_record(), "chosen"), "field 'chosen'", "missing"),
    ("hh-non-string", "hh", _set(hh_record(), ("rejected",), ["x"]), "field 'rejected'", "string"),
    (
        "hh-empty-answer",
        "hh",
        hh_record(final_chosen=" "),
        "field 'chosen'",
        "turn 4 (Assistant): empty string",
    ),
    (
        "hh-no-marker",
        "hh",
        {"chosen": "Hello there", "rejected": "Hi"},
        "field 'chosen'",
        "must start with",
    ),
    (
        "hh-order",
        "hh",
        {"chosen": "\n\nAssistant: a\n\nHuman: b", "rejected": "\n\nAssistant: a\n\nHuman: c"},
        "field 'chosen'",
        "turn 1 is Assistant: an HH transcript starts with a Human turn",
    ),
    (
        "hh-ends-with-human",
        "hh",
        {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c", "rejected": "\n\nHuman: a\n\nAssistant: d"},
        "field 'chosen'",
        "last turn must be Assistant",
    ),
    (
        "hh-prompts-differ",
        "hh",
        {"chosen": hh_record()["chosen"], "rejected": hh_record()["rejected"].replace("picnic", "party")},
        "field 'rejected'",
        "turn 3 differs",
    ),
    (
        "hh-turn-count",
        "hh",
        {"chosen": hh_record()["chosen"], "rejected": "\n\nHuman: Hi there.\n\nAssistant: Hm."},
        "field 'rejected'",
        "has 2 turns",
    ),
    ("uc-missing", "ultrachat", _drop(uc_record(), "messages"), "field 'messages'", "missing"),
    (
        "uc-ends-with-user",
        "ultrachat",
        _set(uc_record(), ("messages", 1), {"role": "user", "content": "again"}),
        "'messages[1].role'",
        "expected 'assistant'",
    ),
    ("uc-empty-list", "ultrachat", _set(uc_record(), ("messages",), []), "'messages'", "empty list"),
    (
        "uc-system-only",
        "ultrachat",
        _set(uc_record(), ("messages",), [{"role": "system", "content": "Be nice."}]),
        "'messages[0].role'",
        "last message must be 'assistant'",
    ),
]


@pytest.mark.parametrize(
    ("fmt", "bad", "field", "problem"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_record_is_reported_precisely(tmp_path: Path, fmt: str, bad: dict, field: str, problem: str) -> None:
    good = GOOD[fmt]
    path = write_records(tmp_path / "bad_input.jsonl", [good(), good(), bad, good()])
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError) as caught:
        prepare_file(KIND_OF[fmt], fmt, path, out)
    message = str(caught.value)
    assert message.startswith(f"{path}: record 3: ")
    assert field in message
    assert problem in message
    assert not out.exists()


def test_message_format_matches_documentation(tmp_path: Path) -> None:
    bad = _set(uf_record(), ("chosen", 1, "content"), "")
    path = write_records(tmp_path / "x.jsonl", [uf_record()] * 16 + [bad])
    with pytest.raises(DataError, match=r"x\.jsonl: record 17: field 'chosen\[1\]\.content': empty string$"):
        prepare_file("preference", "ultrafeedback", path, tmp_path / "out.jsonl")


def test_bad_json_line_names_record_and_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "broken.jsonl", [json.dumps(uf_record()), "", '{"chosen": [', json.dumps(uf_record())]
    )
    with pytest.raises(DataError, match=r"broken\.jsonl: record 2 \(line 3\): invalid JSON: Expecting value at column"):
        prepare_file("preference", "ultrafeedback", path, tmp_path / "out.jsonl")


def test_json_message_that_ends_in_at_is_not_doubled(tmp_path: Path) -> None:
    """json's "Unterminated string starting at" gets its column without a second "at"."""
    path = write_lines(tmp_path / "cut.jsonl", ['{"chosen": "never closed'])
    with pytest.raises(DataError) as caught:
        prepare_file("preference", "hh", path, tmp_path / "out.jsonl")
    assert str(caught.value).endswith("record 1 (line 1): invalid JSON: Unterminated string starting at column 12")
    with pytest.raises(DataError, match=r"^--source: invalid JSON: Unterminated string starting at column 2$"):
        data.parse_json_option('{"x', "--source")


def test_non_object_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "list.jsonl", [json.dumps(uf_record()), "[1, 2]"])
    with pytest.raises(DataError, match=r"list\.jsonl: record 2 \(line 2\): expected a JSON object, got list"):
        prepare_file("preference", "ultrafeedback", path, tmp_path / "out.jsonl")


def test_limit_reads_only_the_first_records(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "tail.jsonl", [json.dumps(uf_record()), json.dumps(uf_record()), "not json"])
    out = tmp_path / "out.jsonl"
    assert prepare_file("preference", "ultrafeedback", path, out, limit=2) == 2
    with pytest.raises(DataError, match="record 3"):
        prepare_file("preference", "ultrafeedback", path, out)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.jsonl: no records"):
        prepare_file("preference", "hh", path, tmp_path / "out.jsonl")


def test_empty_json_list_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty\.json: no records"):
        prepare_file("alpaca_eval", "alpaca_eval", path, tmp_path / "out.json")


def test_missing_file_and_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file"):
        prepare_file("preference", "hh", tmp_path / "nope.jsonl", tmp_path / "out.jsonl")
    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.csv: unsupported file type"):
        prepare_file("preference", "hh", csv, tmp_path / "out.jsonl")


def test_not_utf8_names_record_line_and_byte(tmp_path: Path) -> None:
    """The bad byte's record, line and place in the line, not an offset into some read buffer."""
    good = json.dumps(hh_record()).encode()
    bad = '{"chosen": "caf\xe9"}'.encode("latin-1")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"\n".join([good] * 3000 + [b"", bad, good]) + b"\n")  # far past the first read buffer
    position = bad.index(b"\xe9") + 1
    with pytest.raises(DataError) as caught:
        prepare_file("preference", "hh", path, tmp_path / "out.jsonl")
    assert str(caught.value) == (
        f"{path}: record 3001 (line 3002): not UTF-8 text (byte 0xe9 at byte {position} of the line)"
    )
    listed = tmp_path / "latin1.json"
    listed.write_bytes(b'[\n{"instruction": "a"},\n' + bad + b"\n]")
    with pytest.raises(DataError, match=rf"latin1\.json: not UTF-8 text \(byte 0xe9 at line 3, byte {position}\)"):
        prepare_file("alpaca_eval", "alpaca_eval", listed, tmp_path / "out.json")


def test_alpaca_eval_errors(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    path = tmp_path / "ae.json"
    path.write_text(json.dumps([ae_record("a"), {"instruction": "b", "generator": "g", "dataset": "d"}]))
    with pytest.raises(DataError, match=r"ae\.json: record 2: field 'output': missing"):
        prepare_file("alpaca_eval", "alpaca_eval", path, out)
    path.write_text(json.dumps([ae_record("a"), ae_record("b"), ae_record("a")]))
    with pytest.raises(DataError, match=r"ae\.json: record 3: field 'instruction': duplicate of record 1"):
        prepare_file("alpaca_eval", "alpaca_eval", path, out)
    path.write_text(json.dumps([ae_record("a"), "text"]))
    with pytest.raises(DataError, match=r"ae\.json: record 2: expected a JSON object, got string"):
        prepare_file("alpaca_eval", "alpaca_eval", path, out)
    path.write_text('[{"instruction": "a",\n "output": }]')
    with pytest.raises(DataError, match=r"ae\.json: invalid JSON: Expecting value at line 2 column 12$"):
        prepare_file("alpaca_eval", "alpaca_eval", path, out)
    path.write_text(json.dumps({"instruction": "a"}))
    with pytest.raises(DataError, match=r"ae\.json: expected a JSON list of objects, got object"):
        prepare_file("alpaca_eval", "alpaca_eval", path, out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("source", "kind", "problem"),
    [
        ({"format": "csv", "path": "x.jsonl"}, "preference", "'format' must be one of"),
        ({"format": "ultrachat", "path": "x.jsonl"}, "preference", "cannot produce preference data"),
        ({"format": "hh"}, "preference", "exactly one of 'path' or 'hub'"),
        ({"format": "hh", "path": "x", "hub": {"id": "a", "split": "b"}}, "preference", "exactly one of"),
        ({"format": "hh", "path": "x", "limt": 3}, "preference", "unknown key(s) ['limt']"),
        ({"format": "hh", "hub": {"id": "a"}}, "preference", "hub 'split' must be a non-empty string"),
        ({"format": "hh", "hub": {"id": "a", "split": "t", "revison": "x"}}, "preference", "unknown hub key"),
        ({"format": "hh", "path": "x", "name": "has space"}, "preference", "'name' must match"),
        ({"format": "hh", "path": "x", "sample": "all"}, "preference", "'sample' must be"),
        (["hh"], "preference", "expected a mapping"),
    ],
)
def test_bad_source_mapping(tmp_path: Path, source: Any, kind: str, problem: str) -> None:
    with pytest.raises(DataError) as caught:
        data.prepare(kind, source, tmp_path / "out.jsonl")
    assert str(caught.value).startswith("source: ")
    assert problem in str(caught.value)


def test_bad_limit(tmp_path: Path) -> None:
    path = write_records(tmp_path / "uf.jsonl", [uf_record()])
    with pytest.raises(DataError, match="limit must be a positive integer"):
        prepare_file("preference", "ultrafeedback", path, tmp_path / "out.jsonl", limit=0)


# --------------------------------------------------------------------------- parsing and round trips


def test_hh_multi_turn_parsing(tmp_path: Path) -> None:
    path = write_records(tmp_path / "hh.jsonl", [hh_record("Bring a blanket and some fruit.  ", "No.")])
    out = tmp_path / "out.jsonl"
    prepare_file("preference", "hh", path, out)
    (record,) = read_jsonl(out)
    assert record == {
        "id": "hh-000000",
        "prompt": [
            {"role": "user", "content": "Hi there."},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Help me plan a picnic."},
        ],
        "chosen": [{"role": "assistant", "content": "Bring a blanket and some fruit."}],
        "rejected": [{"role": "assistant", "content": "No."}],
        "score_chosen": None,
        "score_rejected": None,
    }
    prepare_file("sft", "hh", path, out)
    (sft,) = read_jsonl(out)
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant", "user", "assistant"]


def test_hh_content_with_colons_and_newlines() -> None:
    where = data.Where("t", 1)
    text = "\n\nHuman: Note: line one\nline two\n\nAssistant: Answer:\n\n- item"
    assert data.parse_hh(text, "chosen", where) == [
        {"role": "user", "content": "Note: line one\nline two"},
        {"role": "assistant", "content": "Answer:\n\n- item"},
    ]


def test_preference_round_trip_keeps_multi_turn_prompt_and_system(tmp_path: Path) -> None:
    record = uf_record()
    context = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    record["chosen"] = context + record["chosen"]
    record["rejected"] = copy.deepcopy(context) + record["rejected"]
    record["chosen"][-1]["extra"] = "dropped"
    records = [uf_record("Q1?"), record, uf_record("Q3?")]
    path = write_records(tmp_path / "uf.jsonl", records)
    out = tmp_path / "out.jsonl"
    assert prepare_file("preference", "ultrafeedback", path, out) == 3
    written = read_jsonl(out)
    assert [r["id"] for r in written] == [
        "ultrafeedback-000000",
        "ultrafeedback-000001",
        "ultrafeedback-000002",
    ]
    assert [m["role"] for m in written[1]["prompt"]] == ["system", "user", "assistant", "user"]
    assert written[1]["chosen"] == [{"role": "assistant", "content": "Boil it for eight minutes."}]
    assert written[1]["rejected"] == [{"role": "assistant", "content": "No idea."}]
    assert written[1]["score_chosen"] == 8.0 and written[1]["score_rejected"] == 3.0


def test_sft_round_trip_and_name(tmp_path: Path) -> None:
    records = [uc_record(f"Question {i}?") for i in range(5)]
    path = write_records(tmp_path / "uc.jsonl", records)
    out = tmp_path / "out.jsonl"
    source = {"format": "ultrachat", "path": str(path), "name": "chat"}
    assert data.prepare("sft", source, out, limit=3) == 3
    written = read_jsonl(out)
    assert [r["id"] for r in written] == ["chat-000000", "chat-000001", "chat-000002"]
    assert [r["messages"] for r in written] == [r["messages"] for r in records[:3]]


def test_random_sample_is_seeded_and_keeps_source_ids(tmp_path: Path) -> None:
    records = [uc_record(f"Question {i}?") for i in range(20)]
    path = write_records(tmp_path / "uc.jsonl", records)
    source = {"format": "ultrachat", "path": str(path), "sample": "random"}

    def ids(seed: int) -> list[str]:
        out = tmp_path / f"out{seed}.jsonl"
        assert data.prepare("sft", source, out, limit=5, seed=seed) == 5
        return [r["id"] for r in read_jsonl(out)]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)
    assert ids(1) == sorted(ids(1))
    for record in read_jsonl(tmp_path / "out1.jsonl"):
        position = int(record["id"].rsplit("-", 1)[1])
        assert record["messages"] == records[position]["messages"]


def test_random_sample_reports_source_record_numbers(tmp_path: Path) -> None:
    records = [uc_record(f"Question {i}?") for i in range(10)]
    records[7] = _drop(records[7], "messages")
    path = write_records(tmp_path / "uc.jsonl", records)
    source = {"format": "ultrachat", "path": str(path), "sample": "random"}
    with pytest.raises(DataError, match=r"record 8: field 'messages': missing"):
        data.prepare("sft", source, tmp_path / "out.jsonl", limit=10)


def test_alpaca_eval_round_trip_drops_extra_keys(tmp_path: Path) -> None:
    records = [{**ae_record("a"), "extra": 1}, {**ae_record("b"), "dataset": ""}]
    path = tmp_path / "ae.json"
    path.write_text(json.dumps(records))
    out = tmp_path / "out.json"
    assert prepare_file("alpaca_eval", "alpaca_eval", path, out) == 2
    assert read_json(out) == [ae_record("a"), {**ae_record("b"), "dataset": ""}]


# --------------------------------------------------------------------------- hub sources (mocked)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_commits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The hub's answer to "which commit is this revision now" (no network here), and the questions asked."""
    import huggingface_hub

    asked: list[tuple[str, Any]] = []

    def dataset_info(self: Any, repo_id: str, revision: Any = None, **kwargs: Any) -> Any:
        asked.append((repo_id, revision))
        return huggingface_hub.hf_api.DatasetInfo(id=repo_id, sha=COMMIT)

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    return asked


def test_hub_dataset_source_reads_and_records_the_resolved_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_commits: list
) -> None:
    import datasets

    calls: list[tuple] = []

    def fake_load_dataset(hub_id: str, config: Any = None, **kwargs: Any) -> datasets.Dataset:
        calls.append((hub_id, config, kwargs))
        return datasets.Dataset.from_list([hh_record(), hh_record(final_chosen=""), hh_record()])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = {"id": "Anthropic/hh-rlhf", "split": "train", "revision": "main"}
    out = tmp_path / "out.jsonl"
    assert data.prepare("preference", {"format": "hh", "hub": hub}, out, limit=1) == 1
    assert hub_commits == [("Anthropic/hh-rlhf", "main")]
    assert calls[0] == ("Anthropic/hh-rlhf", None, {"split": "train", "revision": COMMIT, "data_dir": None})
    manifest = read_json(tmp_path / "out.manifest.json")
    assert manifest["source"] == {"hub": hub, "resolved_revision": COMMIT}
    with pytest.raises(DataError, match=r"^hub:Anthropic/hh-rlhf\[train\]@main: record 2: field 'chosen'"):
        data.prepare("preference", {"format": "hh", "hub": hub}, out)


def test_hub_alpaca_eval_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_commits: list) -> None:
    import huggingface_hub

    local = tmp_path / "alpaca_eval_gpt4_baseline.json"
    local.write_text(json.dumps([ae_record("a"), ae_record("b")]))
    calls: list[dict] = []

    def fake_download(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(local)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    out = tmp_path / "out.json"
    source = {"format": "alpaca_eval", "hub": {"id": "tatsu-lab/alpaca_eval"}}
    assert data.prepare("alpaca_eval", source, out) == 2
    assert hub_commits == [("tatsu-lab/alpaca_eval", None)]
    assert calls == [
        {
            "repo_id": "tatsu-lab/alpaca_eval",
            "filename": "alpaca_eval_gpt4_baseline.json",
            "repo_type": "dataset",
            "revision": COMMIT,
        }
    ]
    manifest = read_json(tmp_path / "out.manifest.json")
    assert manifest["origin"] == "hub:tatsu-lab/alpaca_eval/alpaca_eval_gpt4_baseline.json"
    assert manifest["source"]["resolved_revision"] == COMMIT


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.data", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_cli_bad_data_exits_2_without_output(tmp_path: Path) -> None:
    bad = _set(uf_record(), ("rejected", 1, "content"), "")
    path = write_records(tmp_path / "cli_bad.jsonl", [uf_record(), bad])
    out = tmp_path / "out.jsonl"
    source = json.dumps({"format": "ultrafeedback", "path": str(path)})
    result = run_cli("preference", "--source", source, "--out", str(out))
    assert result.returncode == 2
    assert "cli_bad.jsonl: record 2: field 'rejected[1].content': empty string" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind either


def test_cli_bad_source_json_exits_2(tmp_path: Path) -> None:
    result = run_cli("sft", "--source", "{format: ultrachat}", "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2
    assert "--source: invalid JSON" in result.stderr


def test_cli_success(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    source = json.dumps({"format": "ultrachat", "path": str(SMOKE / "ultrachat_smoke.jsonl")})
    assert data_cli.main(["sft", "--source", source, "--out", str(out), "--limit", "7"]) == 0
    assert len(read_jsonl(out)) == 7
    assert "wrote 7 sft records" in capsys.readouterr().out
