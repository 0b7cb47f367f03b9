"""`python -m cairn ...`: the same as the `cairn` command."""

from .cli import main

if __name__ == "__main__":
    main()
