"""Plans people write themselves, run as they are: epics (markdown with front matter), beads
issues (``.beads/issues.jsonl``) and measure's own proposal files, read into
:class:`~shoemaker.sources.model.PlannedTask` and imported into a generation as tasks that keep
their ids (not to be confused with ``engine/plans.py``: measure's proposals awaiting approval).
"""
