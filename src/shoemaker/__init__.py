"""shoemaker: a spec-driven software factory run by AI coding agents.

Nothing is imported here on purpose: ``shoemaker --help`` must stay fast and must not pull in
Textual, so every submodule is imported where it is used.
"""

__version__ = "0.1.0"
