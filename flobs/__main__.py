"""The `flobs` program's entry point, kept free of imports.

Ctrl-C while Python imports typer, rich and the commands (the first few hundred
milliseconds) must exit 130 without a traceback, so the SIGINT handler is
installed as this module is imported, before any of that; :func:`flobs.cli.main`
takes over once the commands are loaded. (A SIGINT before this module runs, while
the interpreter itself starts, is Python's to handle.)
"""

import os
import signal


def interrupted_before_work(signum: int, frame: object) -> None:
    """Nothing is written yet (or any more): leave at once, with 130."""
    os.write(2, b"interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, interrupted_before_work)


def main() -> None:
    signal.signal(signal.SIGINT, interrupted_before_work)
    from flobs.cli import main as run

    run()


if __name__ == "__main__":
    main()
