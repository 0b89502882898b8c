"""Which generation a command acts on, from the store, the checkout and one setting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoemaker.errors import GenerationError

if TYPE_CHECKING:
    from shoemaker.git import Git
    from shoemaker.model import Generation
    from shoemaker.store import Store


def pick_generation(store: Store, git: Git, wanted: str) -> Generation:
    """The configured generation (``wanted``, a ``generation_branch``), else the one checked
    out, else the only open one; none is bad input with what to do."""
    open_ = store.open_generations()
    if wanted:
        for gen in open_:
            if wanted in (gen.branch, gen.name):
                return gen
        raise GenerationError(
            f"configuration.yaml names generation_branch {wanted!r}, which is not an open "
            "generation; see `shoemaker list`"
        )
    if not open_:
        raise GenerationError("no generation is open; start one with `shoemaker start`")
    if len(open_) == 1:
        return open_[0]  # whatever is checked out
    head = git.current_branch()
    for gen in open_:
        if gen.branch == head:
            return gen
    if len(open_) > 1:
        names = ", ".join(g.name for g in open_)
        raise GenerationError(
            f"several generations are open ({names}) and none is checked out; "
            "choose one with `shoemaker switch NAME`"
        )
    return open_[0]
