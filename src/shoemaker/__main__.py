"""``python -m shoemaker`` is the same as the ``shoemaker`` command."""

from shoemaker.cli import main

raise SystemExit(main())
