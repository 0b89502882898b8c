"""``shoemaker-rehearsal``: a stand-in for the claude CLI, scripted by its own prompt.

It accepts the claude CLI's arguments, reads the prompt on stdin, acts on ``<!-- rehearsal …-->``
YAML blocks found in the prompt (schema: docs/REHEARSAL.md), edits files in its working
directory, and prints stream-json shaped like the real CLI's, ending the way the CLI ends for
the chosen outcome. It imports only the standard library, and PyYAML only for a block that is
not JSON (JSON is valid YAML; PyYAML was a third of the agent's imports), so it starts fast.

``args`` reads the command line, ``directives`` the blocks, ``emitter`` prints the lines,
``actions`` edits files and runs commands, ``outcomes`` acts out one invocation with one
handler per outcome, ``cli`` is the command.
"""

from shoemaker.agents.rehearsal.cli import main
from shoemaker.agents.rehearsal.directives import DirectiveError

__all__ = ["DirectiveError", "main"]
