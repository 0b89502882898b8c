"""Agents: stream-json parsing, the process runner, the claude command line, the rehearsal agent."""
