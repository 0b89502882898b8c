"""The fast stream-json path agrees with the straightforward one (``json.loads`` on every line,
tests/support/streamjson_reference.py) on every recorded line, on hostile lines, and on the
condensed rendering of long texts, which it reads only the start of."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import streamjson_reference as reference
from conftest import REPO_ROOT
from shoemaker.agents.excerpt import excerpt, first_line_excerpt
from shoemaker.agents.jsonline import decode_fast
from shoemaker.agents.streamjson import (
    StreamEvent,
    SummaryBuilder,
    condense,
    parse_line,
    summarize_file,
    summarize_lines,
)

FIXTURE_DIRS = [
    REPO_ROOT / "tests" / "fixtures" / "stream-json",
    Path(
        os.environ.get(
            "SHOEMAKER_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures" / "stream-json"
        )
    ),
]
FIXTURE_FILES = sorted(
    {p for folder in FIXTURE_DIRS if folder.is_dir() for p in folder.glob("*.jsonl")}
)


def _recorded_cwds() -> list[str]:
    """The working directories the fixtures were recorded in (paths under them are shown
    relative, so each is a case of its own)."""
    found = set()
    for path in FIXTURE_FILES:
        for line in path.read_text(errors="replace").splitlines():
            if '"cwd"' in line:
                with_cwd = json.loads(line)
                if isinstance(with_cwd, dict) and isinstance(with_cwd.get("cwd"), str):
                    found.add(with_cwd["cwd"])
    return sorted(found)


CWDS = [None, "/", *_recorded_cwds(), "/project/", "/tmp/x"]


def same(value: Any, expected: Any) -> None:
    """Equal, and of the same types all the way down (1 is not 1.0, nor True)."""
    assert repr(value) == repr(expected)


def same_event(line: str | bytes, cwds: list[str | None] = CWDS) -> None:
    fast, slow = parse_line(line), reference.parse_line(line)
    if slow is None:
        assert fast is None
        return
    assert fast is not None
    assert (fast.type, fast.subtype) == (slow.type, slow.subtype)
    same(fast.data, slow.data)
    for cwd in cwds:
        assert condense(fast, cwd) == reference.condense(slow, cwd)


def same_summary(lines: list[Any], exit_code: int | None = None) -> None:
    fast = dataclasses.asdict(summarize_lines(lines, exit_code))
    slow = dataclasses.asdict(reference.summarize_lines(lines, exit_code))
    same(fast, slow)


def test_the_fixtures_ship_with_the_repository() -> None:
    assert len(list(FIXTURE_DIRS[0].glob("*.jsonl"))) >= 5


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_fixture_line_parses_and_condenses_as_before(path: Path) -> None:
    lines = path.read_bytes().splitlines()
    assert lines
    builder = SummaryBuilder()
    for line in lines:
        same_event(line)
        same_event(line.decode())
        event = builder.feed(line)
        assert event is not None
        assert condense(event, builder.cwd) == reference.condense(
            reference.parse_line(line),  # type: ignore[arg-type]
            builder.cwd,
        )


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_fixture_summary_has_the_same_figures(path: Path) -> None:
    same(
        dataclasses.asdict(summarize_file(path)), dataclasses.asdict(reference.summarize_file(path))
    )
    lines = path.read_bytes().splitlines()
    same_summary(lines, exit_code=0)
    same_summary(lines, exit_code=1)
    same_summary(lines[: len(lines) // 2])  # a run cut short
    same_summary(lines * 3)  # repeated message ids and tool ids count once


def assistant(mid: str, usage: dict[str, Any], model: str = "m") -> str:
    message = {"id": mid, "model": model, "usage": usage, "content": []}
    return json.dumps({"type": "assistant", "message": message})


def test_message_usage_is_summed_over_messages_as_lines_arrive() -> None:
    lines = [
        assistant("a", {"input_tokens": 5, "output_tokens": 1}),
        assistant("a", {"input_tokens": 5, "output_tokens": 40}),  # a's final figures
        assistant("b", {"input_tokens": 7, "cache_read_input_tokens": 100}),
        assistant("a", {"input_tokens": 6, "output_tokens": 41}),  # a again, later
        assistant(
            "c", {"input_tokens": True, "output_tokens": 2.0, "cache_creation_input_tokens": "9"}
        ),
        assistant("d", {"input_tokens": 99}, model="<synthetic>"),
    ]
    builder = SummaryBuilder()
    for count, line in enumerate(lines, 1):
        builder.feed(line)
        same(
            dataclasses.asdict(builder.summary()),
            dataclasses.asdict(reference.summarize_lines(lines[:count])),
        )
    usage = builder.summary().message_usage
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (13, 41)


DEEP = 100_000

HOSTILE: list[str | bytes] = [
    b'{"type":"result","total_cost_usd":NaN,"is_error":false}',
    b'{"type":"result","total_cost_usd":Infinity,"is_error":false,"num_turns":-Infinity}',
    b'{"type":"result","total_cost_usd":1e999,"is_error":false}',
    b'{"type":"result","is_error":false,"modelUsage":{"m":{"inputTokens":1,"costUSD":NaN}}}',
    b'{"type":"result","is_error":false,"usage":{"input_tokens":18446744073709551616}}',
    b'{"type":"result","is_error":false,"num_turns":-9223372036854775809}',
    b'{"type":"result","is_error":false,"num_turns":18446744073709551615}',
    b'{"type":"assistant","message":{"id":"m","usage":{"input_tokens":123456789012345678901234}}}',
    b'{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t","name":"mcp_x",'
    b'"input":{"n":[1, 99999999999999999999999]}}]}}',
    b'{"type":"result","is_error":false, "num_turns" :\t\n 99999999999999999999}',
    b'{"type":"user","message":{"content":"12345678901234567890 in a string"}}',
    b"99999999999999999999",
    b'{"type":"result","is_error":false,"num_turns":' + b"7" * 5000 + b"}",
    b'{"type":"result","is_error":false,"num_turns":' + b"7" * 4300 + b"}",
    b"[1, 2]",
    b'"just a string"',
    b"null",
    b'{"type":"assistant","message":{"content":"\xff\xfe not UTF-8"}}',
    b'{"type":"user","message":{"content":"\xed\xa0\x80 a surrogate in UTF-8"}}',
    b'{"type":"user","message":{"content":"\\ud800 an escaped lone surrogate"}}',
    '{"type":"user","message":{"content":"\ud800 a lone surrogate in a str"}}',
    b'\xef\xbb\xbf{"type":"system","subtype":"init","model":"bom"}',
    '\ufeff{"type":"system","subtype":"init","model":"bom"}',
    '{"type":"system","subtype":"init"}'.encode("utf-16"),
    b'{"type":"system","type":"result","is_error":false}',
    b'{"type":"user","message":{"content":"tab\tinside"}}',
    b'{"type":"user"}\r',
    b'{"type":"user"} trailing',
    b"{" * DEEP + b"}" * DEEP,
    b'{"type":"x","a":' + b"[" * DEEP + b"]" * DEEP + b"}",
    b'{"type":"x","a":' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"type":"x","a":' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"type":"x","a":' + b"[" * 1000 + b"]" * 1000 + b"}",
    b'{"type":"x","a":' + b'{"a":' * 990 + b"1" + b"}" * 990 + b"}",
    b"   ",
    b"",
    "  \t",
    b'{"type":42,"subtype":["x"]}',
]


@pytest.mark.parametrize("line", HOSTILE, ids=lambda line: repr(line[:40]))
def test_hostile_lines_keep_their_outcome(line: str | bytes) -> None:
    same_event(line)
    result = b'{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.5}'
    same_summary([line])
    same_summary([result, line] if isinstance(line, bytes) else [result.decode(), line])


def test_nesting_up_to_and_past_the_recursion_limit_keeps_its_outcome() -> None:
    def at_depth(frames: int, lines: list[bytes]) -> None:
        if frames:
            return at_depth(frames - 1, lines)
        for line in lines:
            same_event(line, cwds=[None])
            same_summary([line])
        return None

    limit = sys.getrecursionlimit()
    arrays = [b"[" * n + b"]" * n for n in range(limit - 150, limit + 20)]
    objects = [b'{"a":' * n + b"1" + b"}" * n for n in range(limit - 150, limit + 20)]
    pad = b'{"pad":"' + b"x" * 70_000 + b'","a":'  # long lines take another way
    long = [pad + b"[" * n + b"]" * n + b"}" for n in range(limit - 150, limit + 20, 3)]
    # Lines shorter than the limit are decoded unwrapped: those about that length.
    short = [b"[" * n + b"]" * n for n in range(limit // 2 - 10, limit // 2 + 10)]
    for frames in (0, 30, 100):  # the limit is for the stack, the caller's frames included
        at_depth(frames, arrays + objects + long + short)


def test_long_lines_of_every_size_in_any_order_and_thread() -> None:
    sizes = [70_000, 300_000, 100_000, 65_537, 2_000_000, 80_000]
    lines = [huge_line("y" * size, f',"n":{size}') for size in sizes]
    for line in lines:
        same_event(line, cwds=[None])
        assert decode_fast(line) == json.loads(line)  # taken by the fast decoder itself
    seen: list[StreamEvent | None] = []
    worker = threading.Thread(target=lambda: seen.extend(map(parse_line, reversed(lines))))
    worker.start()
    worker.join()
    assert [e.data["n"] if e else None for e in seen] == sizes[::-1]


def test_lines_with_a_few_bytes_changed_decode_as_json_loads_decodes_them() -> None:
    rng = random.Random(7)
    lines = [line for path in FIXTURE_FILES for line in path.read_bytes().splitlines()]
    noise = [b"\\", b'"', b"\xff", b"\xed\xa0\x80", b"\xc3", b"\x00", b"\x1f", b"{", b"}", b"]"]
    noise += [b",", b":", b"1", b"e", b"-", b".", b" ", b"\\u", b"\\ud800", b"NaN", b"9" * 20]
    for _ in range(3000):
        line = bytearray(rng.choice(lines))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(line) + 1)
            if rng.random() < 0.5:
                line[at:at] = rng.choice(noise)
            else:
                line[at : at + 1] = bytes([rng.randrange(256)])
        same_event(bytes(line), cwds=[None])


def huge_line(text: str, tail: str = "") -> bytes:
    block = {"type": "tool_result", "tool_use_id": "t", "content": text}
    return (
        json.dumps({"type": "user", "message": {"content": [block]}})[:-1] + tail + "}"
    ).encode()


def test_a_sixteen_megabyte_line_and_a_long_integer_at_its_end() -> None:
    digits = "0123456789 " * 100_000
    same_event(huge_line(digits * 16), cwds=[None])
    for line in (
        huge_line(digits, ',"n":123456789012345678901'),
        huge_line("x" * 1024 * 1024, ',"n":-9300000000000000000'),
        huge_line("x" * 1024 * 1024, ',"n":93000000000000000.5'),
    ):
        same_event(line, cwds=[None, "/work"])
    event = parse_line(huge_line(digits, ',"n":123456789012345678901'))
    assert event is not None and event.data["n"] == 123456789012345678901


class Untouchable(str):
    """A text that fails the test if it is split, stripped or searched as a whole."""

    def _whole(self, *args: Any) -> Any:
        raise AssertionError("the whole text was read")

    split = splitlines = strip = lstrip = rstrip = replace = _whole  # type: ignore[assignment]


def test_condense_reads_only_the_start_of_a_long_text() -> None:
    text = Untouchable("first line of many\n" + "y" * (4 * 1024 * 1024))
    user = {"type": "tool_result", "content": text}
    event = StreamEvent("user", None, {"type": "user", "message": {"content": [user]}})
    assert condense(event, "/w") == "  ↳ first line of many"
    failed = StreamEvent("user", None, {"message": {"content": [{**user, "is_error": True}]}})
    assert (condense(failed, "/w") or "").startswith("[ERROR: first line of many yyy")
    spoken = {"type": "text", "text": text}
    said = StreamEvent("assistant", None, {"message": {"content": [spoken]}})
    assert (condense(said) or "").endswith("yyy…")
    bash = {"type": "tool_use", "name": "Bash", "input": {"command": text}}
    ran = StreamEvent("assistant", None, {"message": {"content": [bash]}})
    assert condense(ran) == "[Bash: first line of many]"


def random_text(rng: random.Random, size: int) -> str:
    alphabet = ["a", "b", "/w/", "/w", " ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x1c"]
    alphabet += ["\u2028", "\x85", "\xa0", "é", "x" * 40, " " * 300, "\n" * 50]
    out: list[str] = []
    length = 0
    while length < size:
        piece = rng.choice(alphabet)
        out.append(piece)
        length += len(piece)
    return "".join(out)[:size]


def test_excerpts_of_long_texts_are_those_of_the_whole_text() -> None:
    rng = random.Random(20261129)
    sizes = [0, 1, 99, 100, 101, 199, 200, 201, 255, 256, 257, 400, 513, 2047, 2049, 5000, 40_000]
    for _ in range(40):
        for size in sizes:
            text = random_text(rng, size)
            for limit in (100, 120, 160, 200):
                assert excerpt(text, limit) == reference._excerpt(text, limit)
                lines = text.strip().splitlines()
                whole = reference._excerpt(lines[0], limit) if lines else ""
                assert first_line_excerpt(text, limit) == whole
            pieces: Any = text if rng.random() < 0.5 else split_blocks(rng, text)
            for failed in (True, False):
                block = {"type": "tool_result", "content": pieces, "is_error": failed}
                line = json.dumps({"type": "user", "message": {"content": [block]}})
                same_event(line, cwds=[None, "/w", "/w/", "/"])
            bash = {"type": "tool_use", "name": "Bash", "input": {"command": text}}
            said = {"type": "text", "text": text}
            line = json.dumps({"type": "assistant", "message": {"content": [bash, said]}})
            same_event(line, cwds=[None])


def split_blocks(rng: random.Random, text: str) -> list[Any]:
    cuts = sorted(rng.randrange(len(text) + 1) for _ in range(3))
    texts = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return [{"type": "text", "text": t} for t in texts] + [{"type": "image"}, "stray"]


def test_events_kept_and_condensed_later_read_as_condensed_at_once() -> None:
    path = FIXTURE_FILES[0]
    builder = SummaryBuilder()
    kept: list[tuple[StreamEvent, str | None]] = []
    for line in path.read_bytes().splitlines():
        event = builder.feed(line)
        assert event is not None
        kept.append((event, condense(event, "/w")))
    builder.summary()
    assert [condense(event, "/w") for event, _ in kept] == [text for _, text in kept]


@pytest.mark.parametrize("failed", [True, False])
def test_a_worktree_path_across_the_end_of_the_read_start_is_still_taken_out(failed: bool) -> None:
    cwd = "/srv/checkouts/project"
    for window in (256, 320, 400, 1024, 1280):
        for shown in range(80, 160, 7):
            for cut in range(1, len(cwd) + 1):
                gap = " " * (window - shown - cut)
                text = "x" * shown + gap + cwd + "/rest of the line\n" + "z" * 3000
                block = {"type": "tool_result", "content": text, "is_error": failed}
                line = json.dumps({"type": "user", "message": {"content": [block]}})
                same_event(line, cwds=[cwd])
