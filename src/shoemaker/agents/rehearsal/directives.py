"""The ``<!-- rehearsal …-->`` blocks of a prompt: parsed, validated, turned into a script."""

from __future__ import annotations

import json
import re
from functools import cache

from shoemaker.errors import BadInput

# Not typing's: the agent starts without importing typing (PYTHONPROFILEIMPORTTIME, tests).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import yaml

OUTCOMES = ("success", "crash", "hang", "malformed", "max_turns", "api_error", "sigterm")
RATE_LIMIT_STATUSES = ("allowed", "allowed_warning", "rejected")

_BLOCK = re.compile(r"<!--\s*rehearsal\b(.*?)-->", re.DOTALL)
_EXISTING = re.compile(r"^- #\d+ \[[a-z_]+\] (.+)$", re.MULTILINE)
_HEADING = re.compile(r"^#{2,3} +(.+?) *#*$", re.MULTILINE)

STITCH_KEYS = {
    "files",
    "append",
    "delete",
    "run",
    "detach",
    "subagents",
    "text",
    "duration",
    "tokens",
    "cost_usd",
    "outcome",
    "on_attempt",
    "exit_code",
    "api_error_status",
    "heartbeat",
    "signal",
    "rate_limit",
    "wait",
}
MEASURE_KEYS = {"propose", "propose_via"}


class DirectiveError(BadInput, ValueError):
    """A rehearsal block that cannot be followed."""


def read_blocks(prompt: str) -> list[dict[str, Any]]:
    blocks = []
    for number, body in enumerate(_BLOCK.findall(prompt), 1):
        data = _load(body, number)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise DirectiveError(f"block {number} must be a mapping, got {type(data).__name__}")
        unknown = set(data) - STITCH_KEYS - MEASURE_KEYS
        if unknown:
            raise DirectiveError(f"block {number} has unknown keys {sorted(unknown)}")
        blocks.append(data)
    return blocks


def _load(body: str, number: int) -> Any:
    """A block's script. Scripts written as JSON (valid YAML, and what shoemaker's tests and
    benchmarks write) are read without importing PyYAML, a third of the agent's imports."""
    try:
        return json.loads(body)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise DirectiveError(f"block {number} is not valid YAML: {exc}") from None


def _expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
    if not isinstance(value, kind) or (
        isinstance(value, bool) and kind in (int, float, (int, float))
    ):
        raise DirectiveError(f"{key} has the wrong type ({type(value).__name__})")
    return value


def stitch_directives(blocks: list[dict[str, Any]], attempt: int) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in blocks:
        merged.update({k: v for k, v in block.items() if k in STITCH_KEYS})
    overrides = merged.pop("on_attempt", None) or {}
    _expect(overrides, dict, "on_attempt")
    for key, value in overrides.items():
        if str(key) == str(attempt):
            _expect(value, dict, f"on_attempt.{key}")
            merged.update(value)
    _validate_stitch(merged)
    return merged


def _validate_stitch(d: dict[str, Any]) -> None:
    for key in ("files", "append"):
        if key in d:
            for path, text in _expect(d[key], dict, key).items():
                _expect(text, str, f"{key}.{path}")
    if "delete" in d:
        for path in _expect(d["delete"], list, "delete"):
            _expect(path, str, "delete[]")
    for key in ("run", "detach", "subagents"):
        if key in d:
            for cmd in _expect(d[key], list, key):
                _expect(cmd, str, f"{key}[]")
    for key in ("duration", "heartbeat"):
        if key in d:
            _expect(d[key], (int, float), key)
    if "wait" in d:
        for i, hold in enumerate(_expect(d["wait"], list, "wait")):
            _expect(hold, dict, f"wait[{i}]")
            if set(hold) != {"after", "for"}:
                raise DirectiveError(f"wait[{i}] takes after (a step count) and for (a path)")
            _expect(hold["after"], int, f"wait[{i}].after")
            _expect(hold["for"], str, f"wait[{i}].for")
    if "cost_usd" in d:
        _expect(d["cost_usd"], (int, float), "cost_usd")
    if "tokens" in d:
        for key, value in _expect(d["tokens"], dict, "tokens").items():
            if key not in ("input", "output", "cache_read", "cache_creation"):
                raise DirectiveError(
                    f"tokens.{key} is not one of input, output, cache_read, cache_creation"
                )
            _expect(value, int, f"tokens.{key}")
    if "signal" in d:
        signal = _expect(d["signal"], dict, "signal")
        if set(signal) - {"status", "reason"}:
            raise DirectiveError("signal takes status and reason only")
        if signal.get("status", "completed") not in ("completed", "blocked"):
            raise DirectiveError("signal.status must be completed or blocked")
        _expect(signal.get("reason", ""), str, "signal.reason")
    if "rate_limit" in d:
        limit = _expect(d["rate_limit"], dict, "rate_limit")
        if set(limit) - {"status", "resets_at"}:
            raise DirectiveError("rate_limit takes status and resets_at only")
        if limit.get("status", "rejected") not in RATE_LIMIT_STATUSES:
            choices = ", ".join(RATE_LIMIT_STATUSES)
            raise DirectiveError(f"rate_limit.status must be one of {choices}")
        if "resets_at" in limit:
            _expect(limit["resets_at"], (int, float), "rate_limit.resets_at")
    if d.get("outcome", "success") not in OUTCOMES:
        raise DirectiveError(f"outcome must be one of {', '.join(OUTCOMES)}")
    for key in ("exit_code", "api_error_status"):
        if key in d:
            _expect(d[key], int, key)


def measure_proposals(
    blocks: list[dict[str, Any]], prompt: str, limit: int
) -> tuple[list[dict[str, Any]], str]:
    """The proposals to write (existing titles filtered out, dependencies remapped) and how."""
    via = "file"
    raw: list[Any] = []
    found = False
    for block in blocks:
        if "propose" in block:
            found = True
            raw.extend(_expect(block["propose"], list, "propose"))
        if "propose_via" in block:
            via = block["propose_via"]
            if via not in ("file", "text", "none"):
                raise DirectiveError("propose_via must be file, text or none")
    existing = {t.strip() for t in _EXISTING.findall(prompt)}
    if not found:
        raw = _proposals_from_headings(prompt, existing)
    keep = [
        i
        for i, item in enumerate(raw)
        if not (isinstance(item, dict) and item.get("title") in existing)
    ]
    new_index = {old: new for new, old in enumerate(keep)}
    out = []
    for old in keep:
        item = raw[old]
        if not isinstance(item, dict):
            out.append(item)  # written verbatim: shoemaker's validation must catch it
            continue
        entry: dict[str, Any] = {"index": new_index[old]}
        if "title" in item:
            entry["title"] = item["title"]
        description = str(item.get("description", ""))
        if isinstance(item.get("rehearsal"), dict):
            dumped = _dump_block(item["rehearsal"])
            description = f"{description.rstrip()}\n\n<!-- rehearsal\n{dumped}-->\n"
        entry["description"] = description
        deps = item.get("depends_on", item.get("dependency", []))
        deps = deps if isinstance(deps, list) else [deps]
        mapped = []
        for dep in deps:
            if dep in new_index:
                mapped.append(new_index[dep])
            elif not (isinstance(dep, int) and 0 <= dep < len(raw)) and dep != -1:
                mapped.append(dep)  # a bad index stays bad: shoemaker must refuse it
        entry["dependency"] = -1 if not mapped else mapped[0] if len(mapped) == 1 else mapped
        for key in ("priority", "agent", "resources"):
            if key in item:
                entry[key] = item[key]
        out.append(entry)
    return out[:limit] if not found else out, via


def _dump_block(value: object) -> str:
    import yaml

    return yaml.dump(value, Dumper=_block_dumper(), sort_keys=False, allow_unicode=True)


@cache
def _block_dumper() -> type[yaml.SafeDumper]:
    """A dumper of multi-line strings as ``|`` blocks, so scripted file contents stay
    readable (made on first use: only a measure that proposes scripts needs PyYAML)."""
    import yaml

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    class BlockDumper(yaml.SafeDumper):
        pass

    BlockDumper.add_representer(str, represent_str)
    return BlockDumper


def _proposals_from_headings(prompt: str, existing: set[str]) -> list[dict[str, Any]]:
    """Without directives: up to three tasks from the documents' headings, in a chain."""
    docs = prompt.split("\n## Documents", 1)[-1]
    titles = []
    for heading in _HEADING.findall(docs):
        title = heading.strip()
        if "/" in title or title.endswith(".md") or title in titles:
            continue
        if f"Implement {title}" not in existing:
            titles.append(title)
    return [
        {
            "title": f"Implement {t}",
            "description": f"Implement what the documents say under '{t}'.",
            "depends_on": [n - 1] if n else [],
        }
        for n, t in enumerate(titles[:3])
    ]
