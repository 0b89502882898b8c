"""The base of every settings model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A settings model that refuses keys it does not know."""

    # Unknown keys are almost always typos; refusing them names the field to fix.
    model_config = ConfigDict(extra="forbid", validate_default=True)
