"""The `cairn` command line: thin verbs over `Repository` (DESIGN.md, section "CLI").

The repository opens lazily from the global options, then CAIRN_* variables. Every failure
ends as one line on stderr, `cairn: error: ...`: exit 1 for errors, 2 for bad input.
Unexpected exceptions say so and show their traceback only with CAIRN_DEBUG=1.

One module per group of verbs; importing them registers their commands on `app`, in the
order `cairn --help` lists them.
"""

# isort: off
from . import log, browse, change, care, projects  # noqa: F401  (registers the commands)

# isort: on
from .care import parse_size
from .frame import BadInput, app, main

__all__ = ["BadInput", "app", "main", "parse_size"]
