"""The commented default ``configuration.yaml`` that ``shoemaker init`` prints or writes."""

from __future__ import annotations

import ast
import functools
import inspect
import os
import textwrap
from pathlib import Path

import yaml
from pydantic import BaseModel

from shoemaker.config.file import CONFIG_FILE, ConfigError
from shoemaker.config.models import Config


def default_config_text() -> str:
    """The commented default ``configuration.yaml`` that ``shoemaker init`` writes."""
    out = [
        "# shoemaker configuration. Every setting is shown with its default;",
        "# delete what you do not change. Precedence: defaults < this file < command-line flags.",
        "",
    ]
    _emit_model(Config(), out, indent="")
    return "\n".join(out) + "\n"


@functools.cache
def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The docstring under each field of ``model`` (and of its bases), read from the source.

    Only this file needs them, so the models do not ask pydantic to read their source each
    time the configuration is loaded (``use_attribute_docstrings``: a fifth of that)."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
        assert isinstance(body, ast.ClassDef)
        for field, doc in zip(body.body, body.body[1:], strict=False):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                docs[field.target.id] = inspect.cleandoc(doc.value.value)
    return docs


def _emit_model(model: BaseModel, out: list[str], indent: str) -> None:
    docs = field_docs(type(model))
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        description = info.description or docs.get(name, "")
        if description:
            out.extend(f"{indent}# {line.strip()}" for line in description.splitlines())
        if isinstance(value, BaseModel):
            out.append(f"{indent}{name}:")
            _emit_model(value, out, indent + "  ")
        else:
            plain = (
                {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
                if isinstance(value, dict)
                else value
            )
            dumped = yaml.safe_dump(
                {name: plain}, default_flow_style=True, sort_keys=False, width=200
            ).strip()
            # safe_dump wraps the single mapping in braces in flow style; drop them.
            out.append(f"{indent}{dumped[1:-1] if dumped.startswith('{') else dumped}")
        if not indent:
            out.append("")


GATES_EXAMPLE = """\
# Example gates (argv lists are safest; a string is run by /bin/sh):
# gates:
#   - name: tests
#     command: [python, -m, pytest, -q]
#     timeout_sec: 600
"""


def write_default_config(repo: Path, force: bool = False) -> Path:
    """Write the commented default file; refuses to overwrite unless ``force``."""
    path = repo / CONFIG_FILE
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; move it away, then run `shoemaker init`")
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to overwrite it")
    text = default_config_text() + GATES_EXAMPLE
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
