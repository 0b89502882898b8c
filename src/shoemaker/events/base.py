"""What every event is: a frozen pydantic model, stamped with its time and generation, that
serialises itself once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class _Event(BaseModel):
    # Each model's validator is built when the model is first used, not at import: a command
    # that only reads the store never builds them.
    model_config = ConfigDict(frozen=True, defer_build=True)

    ts: float = Field(default_factory=time.time)
    """Wall-clock time the event was emitted (seconds since the epoch)."""
    generation: str | None = None
    """The generation the event belongs to, when there is one."""

    _json: bytes | None = PrivateAttr(default=None)

    def json_bytes(self) -> bytes:
        """The event as JSON, serialised once however many times it is asked for."""
        if self._json is None:
            self._json = self._serialise()
        return self._json

    def _serialise(self) -> bytes:
        return self.model_dump_json().encode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        copy._json = None  # a copy with other values has other JSON
        return copy

    def __eq__(self, other: object) -> bool:
        # Equal by kind and fields alone: whether the JSON was cached is no part of the value.
        if not isinstance(other, _Event):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__
