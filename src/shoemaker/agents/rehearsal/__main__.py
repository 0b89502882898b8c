"""``python -m shoemaker.agents.rehearsal`` is the ``shoemaker-rehearsal`` command."""

import sys

from shoemaker.agents.rehearsal.cli import main

sys.exit(main())
