"""Configuration: ``configuration.yaml`` at the repository root, as typed pydantic models.

Precedence (one rule, documented here and in the README): built-in defaults, then the file, then
command-line flags for the few settings that have one (``--parallel``, ``--cycles``). Every field
has a docstring; ``shoemaker init`` writes the file with those docstrings as comments, so the
file explains itself.

``models`` holds the settings, ``file`` reads and validates the file (its limits and
messages), ``template`` writes the commented default.
"""

from shoemaker.config.file import (
    CONFIG_FILE,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_VALUES,
    ConfigError,
    load_config,
    read_settings,
    save_config,
)
from shoemaker.config.models import (
    CLI_DEFAULT_MODEL,
    DEFAULT_AGENT_ARGS,
    AgentConfig,
    BudgetLimits,
    BudgetsConfig,
    Config,
    DaskConfig,
    EstimateConfig,
    GateConfig,
    ModelPrice,
)
from shoemaker.config.template import GATES_EXAMPLE, default_config_text, write_default_config

__all__ = [
    "CLI_DEFAULT_MODEL",
    "CONFIG_FILE",
    "DEFAULT_AGENT_ARGS",
    "GATES_EXAMPLE",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_VALUES",
    "AgentConfig",
    "BudgetLimits",
    "BudgetsConfig",
    "Config",
    "ConfigError",
    "DaskConfig",
    "EstimateConfig",
    "GateConfig",
    "ModelPrice",
    "default_config_text",
    "load_config",
    "read_settings",
    "save_config",
    "write_default_config",
]
