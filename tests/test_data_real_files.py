"""The data stage on real files: HH's transcripts as they are, the malformed-record policy and its manifest,
prompt sets that check only what they use, identical and duplicate pairs, .gz files, hashed downloads, umask."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evals import harmless, hh_helpful
from suite import data
from suite.data import DataError, Policy
from suite.io import atomic_dir, read_json, read_jsonl, write_json, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "workflow" / "resources" / "smoke"
ODDITIES = SMOKE / "hh_oddities"
SKIP = Policy(on_invalid="skip", max_invalid_fraction=1.0)


def prepare(kind: str, path: Path, tmp_path: Path, **kwargs: Any) -> tuple[list[dict], dict]:
    """Prepare ``path`` as ``kind``; the records written and the manifest."""
    out = tmp_path / f"{kind}.jsonl"
    data.prepare(kind, {"format": kwargs.pop("fmt", "hh"), "path": str(path)}, out, **kwargs)
    return read_jsonl(out), read_json(tmp_path / f"{kind}.manifest.json")


def raw(path: Path) -> list[dict[str, str]]:
    return read_jsonl(path)


def speakers(transcript: str) -> list[str]:
    """The turn markers of an HH transcript, read independently of the parser (a blank line, or the very start)."""
    return re.findall(r"(?:^|\n\n)(Human|Assistant):", transcript)


def has_repeat(turns: list[str]) -> bool:
    return any(turns[i] == turns[i + 1] for i in range(len(turns) - 1))


# --------------------------------------------------------------------------- HH transcripts as they really are


def test_hub_format_fixtures_are_gzipped_json_lines_of_two_transcripts() -> None:
    for path in ODDITIES.glob("*.jsonl.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        assert records and all(list(r) == ["chosen", "rejected"] for r in records), path.name


def test_empty_final_assistant_turn(tmp_path: Path) -> None:
    path = ODDITIES / "empty_final_turn.jsonl.gz"
    empty = [i for i, r in enumerate(raw(path)) if re.search(r"\n\nAssistant: ?$", r["chosen"])]
    assert len(empty) == 2
    pairs, report = prepare("preference", path, tmp_path, policy=SKIP)
    assert (report["read"], report["kept"]) == (len(raw(path)), len(raw(path)) - len(empty))
    assert report["skipped"] == {"chosen: empty final Assistant turn": len(empty)}
    assert {p["id"] for p in pairs}.isdisjoint({f"hh-{i:06d}" for i in empty})
    # The prompt is well formed, so a prompt set keeps it: everything before the final (empty) turn.
    prompts, report = prepare("prompts", path, tmp_path)
    assert report["kept"] == len(raw(path)) and report["skipped"] == {}
    last = raw(path)[empty[1]]["chosen"]
    assert prompts[empty[1]]["prompt"] == [
        {"role": "user", "content": "Can you help me write a birthday card?"},
        {"role": "assistant", "content": "Of course. Who is it for?"},
        {"role": "user", "content": "My grandmother, she is turning ninety."},
    ]
    assert last.endswith("ninety.\n\nAssistant:")
    # ... unless it must carry the chosen reply (hh_helpful's prompt sets).
    _, report = prepare("prompts", path, tmp_path, policy=SKIP, with_chosen=True)
    assert report["skipped"] == {"chosen: empty final Assistant turn": len(empty)}


def test_two_turns_of_one_role_in_a_row_are_one_turn_continued(tmp_path: Path) -> None:
    path = ODDITIES / "consecutive_turns.jsonl.gz"
    records = raw(path)
    repeated = [
        i for i, r in enumerate(records) if any(has_repeat(speakers(r[side])) for side in ("chosen", "rejected"))
    ]
    assert len(repeated) == 3
    pairs, report = prepare("preference", path, tmp_path)  # the strict default: nothing is invalid here
    assert report["kept"] == report["read"] == len(records)
    assert report["repaired"] == {data.MERGED_TURNS: len(repeated)}
    in_prompt, at_end, two_humans = (pairs[i] for i in repeated)
    assert in_prompt["prompt"][1] == {
        "role": "assistant",
        "content": "Of course. Who is it for?\n\nI can suggest a few lines.",
    }
    assert [m["role"] for m in in_prompt["prompt"]] == ["user", "assistant", "user"]
    assert at_end["chosen"] == [{"role": "assistant", "content": "Try: ninety kind years.\n\nOr: many more."}]
    assert at_end["rejected"] == [{"role": "assistant", "content": "Just sign your name."}]
    assert two_humans["prompt"] == [
        {"role": "user", "content": "Can you help me write a birthday card?\n\nIt is for my aunt."}
    ]


def test_whitespace_variants_are_not_part_of_a_turn(tmp_path: Path) -> None:
    path = ODDITIES / "whitespace.jsonl.gz"
    pairs, report = prepare("preference", path, tmp_path)
    assert report["kept"] == report["read"] == len(raw(path)) and report["repaired"] == {}
    odd = pairs[-3:]
    assert [p["chosen"][0]["content"] for p in odd] == ["Of course, gladly.", "Sure.", "Yes, happily."]
    assert [p["rejected"][0]["content"] for p in odd] == ["No.", "Later.", "No."]
    question = [{"role": "user", "content": "Can you help me write a birthday card?"}]
    assert all(p["prompt"] == question for p in odd)


def test_a_transcript_that_starts_with_assistant_is_invalid_with_its_reason(tmp_path: Path) -> None:
    path = ODDITIES / "starts_with_assistant.jsonl.gz"
    opening = [i for i, r in enumerate(raw(path)) if speakers(r["chosen"])[0] == "Assistant"]
    assert len(opening) == 2
    for kind in ("preference", "prompts"):  # its prompt itself does not start with the user
        _, report = prepare(kind, path, tmp_path, policy=SKIP)
        assert report["skipped"] == {"chosen: starts with Assistant": len(opening)}, kind
        assert report["examples"][0] == (
            f"{path}: record {opening[0] + 1}: field 'chosen': turn 1 is Assistant: an HH transcript starts "
            "with a Human turn"
        )
    with pytest.raises(DataError, match=rf"record {opening[0] + 1}: field 'chosen': turn 1 is Assistant"):
        prepare("preference", path, tmp_path)  # the default policy stops at it


def test_human_inside_a_turn_is_text_of_that_turn(tmp_path: Path) -> None:
    """Only a blank line and "Human:" start a turn, as in HH; elsewhere "Human:" is what the speaker wrote."""
    path = ODDITIES / "human_inside_turn.jsonl.gz"
    pairs, report = prepare("preference", path, tmp_path)
    assert report["kept"] == report["read"] == len(raw(path))
    assert [p["chosen"][0]["content"] for p in pairs[-3:]] == [
        "Human: what should it say?",
        "Try this.\nHuman: thanks!",
        "Write Human: Happy birthday.",
    ]
    assert all(len(p["prompt"]) == 1 for p in pairs[-3:])


# --------------------------------------------------------------------------- the policy and its manifest


SMOKE_HH = SMOKE / "hh_smoke.jsonl.gz"


def test_malformed_transcripts_among_good_ones_are_skipped_counted_and_named(tmp_path: Path) -> None:
    records = raw(SMOKE_HH)
    empty = [i for i, r in enumerate(records) if re.search(r"\n\nAssistant: ?$", r["chosen"])]
    opening = [i for i, r in enumerate(records) if speakers(r["chosen"])[0] == "Assistant"]
    assert len(empty) == len(opening) == 1 and len(records) == 85
    policy = Policy(on_invalid="skip", max_invalid_fraction=0.05)
    pairs, report = prepare("preference", SMOKE_HH, tmp_path, policy=policy)
    assert len(pairs) == report["kept"] == len(records) - 2
    assert report == {
        **report,
        "dataset": "hh",
        "origin": str(SMOKE_HH),
        "read": len(records),
        "skipped": {"chosen: empty final Assistant turn": 1, "chosen: starts with Assistant": 1},
        "examples": [
            f"{SMOKE_HH}: record {empty[0] + 1}: field 'chosen': turn 2 (Assistant): empty string",
            f"{SMOKE_HH}: record {opening[0] + 1}: field 'chosen': turn 1 is Assistant: an HH transcript starts "
            "with a Human turn",
        ],
        "on_invalid": "skip",
        "max_invalid_fraction": 0.05,
        "dropped_duplicates": 0,
        "identical_pairs": 0,
    }
    assert report["source"] == {"path": str(SMOKE_HH), "sha256": hashlib.sha256(SMOKE_HH.read_bytes()).hexdigest()}
    assert [p["id"] for p in pairs] == [f"hh-{i:06d}" for i in range(85) if i not in empty + opening]


def test_over_the_fraction_the_prepare_step_fails_with_the_counts(tmp_path: Path) -> None:
    out = tmp_path / "hh.jsonl"
    source = json.dumps({"format": "hh", "path": str(SMOKE_HH), "name": "hh"})
    policy = json.dumps({"on_invalid": "skip", "max_invalid_fraction": 0.02})
    run = run_cli("preference", "--source", source, "--policy", policy, "--out", str(out))
    assert run.returncode == 2
    assert (
        f"error: {SMOKE_HH}: 2 of 85 records are invalid (2.35%), more than max_invalid_fraction 0.02: "
        "chosen: empty final Assistant turn: 1, chosen: starts with Assistant: 1; first: " in run.stderr
    )
    assert list(tmp_path.iterdir()) == [], "no output, no manifest, no temporary file"


def test_the_manifest_is_printed_in_the_log_and_written_beside_the_file(tmp_path: Path) -> None:
    out = tmp_path / "hh.jsonl"
    source = json.dumps({"format": "hh", "path": str(SMOKE_HH), "name": "hh"})
    policy = json.dumps({"on_invalid": "skip", "max_invalid_fraction": 0.05})
    run = run_cli("preference", "--source", source, "--policy", policy, "--out", str(out))
    assert run.returncode == 0, run.stderr
    report = read_json(tmp_path / "hh.manifest.json")
    assert f"hh: read 85, kept 83 ({SMOKE_HH})" in run.stdout
    assert "skipped (on_invalid: skip): chosen: empty final Assistant turn: 1, chosen: starts with Assistant: 1" in (
        run.stdout
    )
    for example in report["examples"]:
        assert f"e.g. {example}" in run.stdout
    assert f"repaired: {data.MERGED_TURNS}: 1" in run.stdout


def test_default_policy_stops_at_the_first_malformed_record(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"hh_smoke\.jsonl\.gz: record 81: field 'chosen': turn 2 \(Assistant\)"):
        prepare("preference", SMOKE_HH, tmp_path)
    assert not (tmp_path / "preference.jsonl").exists() and not (tmp_path / "preference.manifest.json").exists()


def test_unreadable_lines_are_records_the_policy_skips(tmp_path: Path) -> None:
    good = json.dumps(
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello.", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away."}
    ).encode()
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good, b'{"chosen": ', b"[1]", b'{"chosen": "caf\xe9"}', good]) + b"\n")
    pairs, report = prepare("preference", path, tmp_path, policy=SKIP)
    assert [p["id"] for p in pairs] == ["hh-000000", "hh-000004"]
    assert report["skipped"] == {"invalid JSON": 1, "not a JSON object": 1, "not UTF-8": 1}
    assert report["examples"][2].startswith(f"{path}: record 4 (line 4): not UTF-8 text (byte 0xe9")


def test_random_sample_is_drawn_from_the_kept_records(tmp_path: Path) -> None:
    """With skipping, a limit of N still gives N prompts, drawn reproducibly; ids name source positions."""
    source = {"format": "hh", "path": str(ODDITIES / "empty_final_turn.jsonl.gz"), "sample": "random"}
    out = tmp_path / "s.jsonl"
    n_valid = len(raw(ODDITIES / "empty_final_turn.jsonl.gz")) - 2
    draws = []
    for _ in range(2):
        assert data.prepare("preference", source, out, limit=n_valid - 1, seed=3, policy=SKIP) == n_valid - 1
        draws.append([r["id"] for r in read_jsonl(out)])
    assert draws[0] == draws[1] == sorted(draws[0])
    assert read_json(tmp_path / "s.manifest.json")["skipped"] == {"chosen: empty final Assistant turn": 2}


def test_first_n_kept_records_read_only_as_far_as_needed(tmp_path: Path) -> None:
    _, report = prepare("preference", SMOKE_HH, tmp_path, limit=5)
    assert (report["read"], report["kept"], report["skipped"]) == (5, 5, {})


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"on_invalid": "ignore"}, "'on_invalid' must be one of ['error', 'skip']"),
        ({"max_invalid_fraction": 2}, "'max_invalid_fraction' must be a number in [0, 1]"),
        ({"drop_duplicate": True}, "unknown key(s) ['drop_duplicate']"),
        ({"drop_identical": "yes"}, "'drop_identical' must be true or false"),
    ],
)
def test_bad_policy_is_named(values: dict, problem: str) -> None:
    with pytest.raises(DataError) as caught:
        Policy.from_mapping(values)
    assert str(caught.value).startswith("policy: ") and problem in str(caught.value)


# --------------------------------------------------------------------------- prompt sets check what they use


def uf_pair(prompt: str, chosen: Any, rejected: Any) -> dict[str, Any]:
    user = {"role": "user", "content": prompt}
    return {
        "chosen": [user, {"role": "assistant", "content": chosen}],
        "rejected": [user, {"role": "assistant", "content": rejected}],
    }


def test_a_prompt_with_malformed_responses_is_a_valid_prompt(tmp_path: Path) -> None:
    hh = tmp_path / "hh.jsonl"
    write_jsonl(
        hh,
        [
            {"chosen": "\n\nHuman: Is it safe?\n\nAssistant: ", "rejected": 7},
            {"chosen": "\n\nHuman: A\n\nAssistant: b\n\nHuman: C\n\nAssistant: d\n\nAssistant: e", "rejected": ""},
        ],
    )
    prompts, report = prepare("prompts", hh, tmp_path)
    assert [p["prompt"] for p in prompts] == [
        [{"role": "user", "content": "Is it safe?"}],
        [{"role": "user", "content": "A"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "C"}],
    ]
    assert all(set(p) == {"id", "prompt"} for p in prompts) and report["skipped"] == {}
    with pytest.raises(DataError, match="record 1: field 'chosen': turn 2 \\(Assistant\\): empty string"):
        prepare("preference", hh, tmp_path)
    uf = tmp_path / "uf.jsonl"
    write_jsonl(uf, [uf_pair("Q?", "", None), uf_pair("R?", "Fine.", "Also fine.")])
    prompts, _ = prepare("prompts", uf, tmp_path, fmt="ultrafeedback")
    assert [p["prompt"] for p in prompts] == [[{"role": "user", "content": "Q?"}], [{"role": "user", "content": "R?"}]]
    prompts, report = prepare("prompts", uf, tmp_path, fmt="ultrafeedback", with_chosen=True, policy=SKIP)
    assert prompts[0]["chosen"] == [{"role": "assistant", "content": "Fine."}]
    assert report["skipped"] == {"chosen[].content: empty string": 1}


def test_evaluators_read_the_prompt_of_a_raw_transcript_whose_reply_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "raw.jsonl"
    write_jsonl(path, [{"chosen": "\n\nHuman: Is it safe?\n\nAssistant: ", "rejected": ""}])
    assert harmless.read_prompts(path) == [[{"role": "user", "content": "Is it safe?"}]]


def test_hh_helpful_refuses_a_prompt_set_without_chosen_replies_before_generating(tmp_path: Path) -> None:
    prompts_only = tmp_path / "prompts.jsonl"
    data.prepare("prompts", {"format": "hh", "path": str(SMOKE / "hh_test_smoke.jsonl")}, prompts_only)
    with pytest.raises(ValueError, match=rf"{prompts_only}: record 1: field 'chosen': missing; .*with_chosen: true"):
        hh_helpful.read_prompts(prompts_only)
    with_chosen = tmp_path / "with_chosen.jsonl"
    data.prepare("prompts", {"format": "hh", "path": str(SMOKE / "hh_test_smoke.jsonl")}, with_chosen, with_chosen=True)
    assert hh_helpful.read_prompts(with_chosen) == harmless.read_prompts(prompts_only)
    assert len(hh_helpful.chosen_replies(with_chosen)) == 20


def test_with_chosen_belongs_to_prompt_sets() -> None:
    with pytest.raises(DataError, match="with_chosen applies to prompt sets"):
        data.record_normaliser("preference", "hh", with_chosen=True)


# --------------------------------------------------------------------------- identical and duplicate pairs


def test_identical_and_duplicate_pairs_are_counted_and_dropped_on_request(tmp_path: Path) -> None:
    path = tmp_path / "uf.jsonl"
    records = [
        uf_pair("A?", "Yes.", "No."),
        uf_pair("B?", "Same.", "Same."),  # chosen == rejected
        uf_pair("A?", "Yes.", "No."),  # a repeat of record 1
        uf_pair("C?", "Yes.", "No."),
        uf_pair("B?", "Same.", "Same."),  # identical and a repeat
    ]
    write_jsonl(path, records)
    kept, report = prepare("preference", path, tmp_path, fmt="ultrafeedback")
    assert len(kept) == 5
    assert (report["identical_pairs"], report["dropped_identical"]) == (2, 0)
    assert (report["duplicates"], report["dropped_duplicates"]) == (2, 0)
    kept, report = prepare("preference", path, tmp_path, fmt="ultrafeedback", policy=Policy(drop_identical=True))
    assert [r["id"] for r in kept] == ["ultrafeedback-000000", "ultrafeedback-000002", "ultrafeedback-000003"]
    assert (report["identical_pairs"], report["dropped_identical"], report["duplicates"]) == (2, 2, 1)
    kept, report = prepare("preference", path, tmp_path, fmt="ultrafeedback", policy=Policy(drop_duplicates=True))
    assert [r["id"] for r in kept] == ["ultrafeedback-000000", "ultrafeedback-000001", "ultrafeedback-000003"]
    assert (report["duplicates"], report["dropped_duplicates"], report["identical_pairs"]) == (2, 2, 2)


# --------------------------------------------------------------------------- .gz files and hashed downloads


def test_gz_files_are_read_transparently(tmp_path: Path) -> None:
    plain = read_jsonl(SMOKE / "ultrachat_smoke.jsonl")[:4]
    lines = tmp_path / "uc.jsonl.gz"
    lines.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in plain).encode()))
    assert read_jsonl(lines) == plain
    sft, report = prepare("sft", lines, tmp_path, fmt="ultrachat")
    assert [r["messages"] for r in sft] == [r["messages"] for r in plain]
    assert report["source"]["sha256"] == hashlib.sha256(lines.read_bytes()).hexdigest()
    listed = tmp_path / "ae.json.gz"
    reference = read_json(SMOKE / "alpaca_eval_smoke.json")
    listed.write_bytes(gzip.compress(json.dumps(reference).encode()))
    assert data.prepare("alpaca_eval", {"format": "alpaca_eval", "path": str(listed)}, tmp_path / "ae.json") == 24
    assert read_json(tmp_path / "ae.json") == reference
    assert data.default_manifest_path(tmp_path / "ae.json") == tmp_path / "ae.manifest.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server over a folder: (base URL, folder)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    thread.join()


def test_url_source_is_verified_against_its_sha256_and_cached_under_it(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = server
    monkeypatch.setenv("AAO_SUITE_CACHE", str(tmp_path / "cache"))
    body = (SMOKE_HH).read_bytes()
    (root / "train.jsonl.gz").write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    source = {"format": "hh", "url": f"{base}/train.jsonl.gz", "sha256": digest, "name": "hh"}
    out = tmp_path / "hh.jsonl"
    assert data.prepare("sft", source, out, limit=3) == 3
    cached = data.fetch_url(source["url"], download=False, sha256=digest)
    assert cached.read_bytes() == body and digest in cached.parts
    assert read_json(tmp_path / "hh.manifest.json")["source"] == {"url": source["url"], "sha256": digest}
    # The file changes upstream: a config with the old hash keeps its verified copy; a new hash must match.
    (root / "train.jsonl.gz").write_bytes(gzip.compress(b'{"chosen": "x"}\n'))
    assert data.prepare("sft", source, out, limit=3) == 3
    wrong = {**source, "sha256": "0" * 64}
    with pytest.raises(
        DataError, match=r"train\.jsonl\.gz: the download has sha256 [0-9a-f]{64}, the config expects 0{64}"
    ):
        data.prepare("sft", wrong, out)
    with pytest.raises(DataError, match="not downloaded yet"):
        data.fetch_url(source["url"], download=False, sha256="0" * 64)  # nothing was cached under the wrong hash


def test_sha256_goes_with_a_url() -> None:
    with pytest.raises(DataError, match="'sha256' goes with 'url'"):
        data.check_source({"format": "hh", "path": "x.jsonl", "sha256": "0" * 64})
    with pytest.raises(DataError, match="64 lower-case hex digits"):
        data.check_source({"format": "hh", "url": "https://x/y.jsonl", "sha256": "abc"})


# --------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_respect_the_umask(tmp_path: Path, umask: int, file_mode: int, dir_mode: int) -> None:
    previous = os.umask(umask)
    try:
        write_json(tmp_path / "result.json", {"a": 1})
        write_jsonl(tmp_path / "data.jsonl", [{"a": 1}])
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "weights.bin").write_bytes(b"0")
    finally:
        os.umask(previous)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "data.jsonl").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "model").stat().st_mode & 0o777 == dir_mode


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.data", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_cli_bad_policy_exits_2(tmp_path: Path) -> None:
    source = json.dumps({"format": "hh", "path": str(SMOKE_HH)})
    run = run_cli("preference", "--source", source, "--policy", '{"on_invalid": "drop"}', "--out", str(tmp_path / "o"))
    assert run.returncode == 2 and "error: policy: 'on_invalid' must be one of" in run.stderr
