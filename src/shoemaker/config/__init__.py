"""Configuration: ``configuration.yaml`` at the repository root, as typed pydantic models.

Precedence (one rule, documented here and in the README): built-in defaults, then the file, then
command-line flags for the few settings that have one (``--parallel``, ``--cycles``). Every field
has a docstring; ``shoemaker init`` writes the file with those docstrings as comments, so the
file explains itself.

``models`` holds the settings (``agents``, ``prices``, ``notify``, ``schedules`` and
``cluster`` the sections of agents, token prices, notifications, scheduled batches and the
Dask cluster; ``strict`` their
base), ``file`` reads and validates the file (its limits and
messages), ``template`` writes the commented default.
"""

from shoemaker.config.agents import DEFAULT_AGENT_ARGS, AgentConfig
from shoemaker.config.cluster import DaskConfig
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
    BudgetLimits,
    BudgetsConfig,
    Config,
    EstimateConfig,
    GateConfig,
)
from shoemaker.config.notify import NOTIFY_EVENTS, NotifyChannel
from shoemaker.config.prices import CLI_DEFAULT_MODEL, ModelPrice
from shoemaker.config.template import GATES_EXAMPLE, default_config_text, write_default_config

__all__ = [
    "CLI_DEFAULT_MODEL",
    "CONFIG_FILE",
    "DEFAULT_AGENT_ARGS",
    "GATES_EXAMPLE",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_VALUES",
    "NOTIFY_EVENTS",
    "AgentConfig",
    "BudgetLimits",
    "BudgetsConfig",
    "Config",
    "ConfigError",
    "DaskConfig",
    "EstimateConfig",
    "GateConfig",
    "ModelPrice",
    "NotifyChannel",
    "default_config_text",
    "load_config",
    "read_settings",
    "save_config",
    "write_default_config",
]
