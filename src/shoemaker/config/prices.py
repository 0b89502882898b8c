"""What tokens cost: the ``prices`` of ``configuration.yaml``, for estimates and for runs
whose result line does not say what they cost."""

from __future__ import annotations

from pydantic import Field

from shoemaker.config.strict import Strict
from shoemaker.model import Usage


class ModelPrice(Strict):
    """Dollars per million tokens of one model, for estimates."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(default=0, ge=0)
    cache_write: float = Field(default=0, ge=0)

    def cost(self, usage: Usage) -> float:
        """Dollars for these tokens."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / 1_000_000


#: The model the claude CLI (2.1.197) uses when ``agent.model`` is empty, as its init line and
#: messages name it (the init line adds a context-window suffix such as ``[1m]``).
CLI_DEFAULT_MODEL = "claude-opus-4-8"


def default_prices() -> dict[str, ModelPrice]:
    # List prices of the CLI's default model: $5 / $25 per million input / output tokens,
    # cache reads 0.1× and cache writes 1.25× of input. Edit them for yours. They price
    # estimates, and the spend of runs whose result line does not say what they cost.
    return {"default": ModelPrice(input=5.0, output=25.0, cache_read=0.5, cache_write=6.25)}
