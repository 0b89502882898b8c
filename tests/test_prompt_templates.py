"""Prompt templates: read at every render, compiled once per text."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.sandbox import SandboxedEnvironment

from shoemaker.resources import ResourceError, render_prompt


def test_a_template_is_compiled_once_per_text_and_an_edit_is_seen(
    fast_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    from_string = SandboxedEnvironment.from_string

    def counted(self: SandboxedEnvironment, source: str, *args: object, **kw: object) -> object:
        compiled.append(source)
        return from_string(self, source, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(SandboxedEnvironment, "from_string", counted)
    template = fast_tmp / ".shoemaker" / "prompts" / "stitch.md"
    template.parent.mkdir(parents=True)
    template.write_text("Task {{ task }}.\n")
    assert render_prompt("stitch.md", {"task": 1}, repo=fast_tmp) == "Task 1.\n"
    assert render_prompt("stitch.md", {"task": 2}, repo=fast_tmp) == "Task 2.\n"
    assert compiled == ["Task {{ task }}.\n"]
    template.write_text("Do {{ task }}!\n")  # edited while the generation runs
    assert render_prompt("stitch.md", {"task": 3}, repo=fast_tmp) == "Do 3!\n"
    assert render_prompt("stitch.md", {"task": 4}, repo=fast_tmp) == "Do 4!\n"
    assert compiled == ["Task {{ task }}.\n", "Do {{ task }}!\n"]
    # A compiled template still says what it lacks, and is still sandboxed.
    with pytest.raises(ResourceError, match="cannot render prompt: 'task' is undefined"):
        render_prompt("stitch.md", {}, repo=fast_tmp)
    template.write_text("{{ task.__class__.__mro__ }}\n")
    with pytest.raises(ResourceError, match="cannot render prompt"):
        render_prompt("stitch.md", {"task": 1}, repo=fast_tmp)
