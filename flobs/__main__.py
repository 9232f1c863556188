"""The `flobs` program's entry point, kept free of imports.

Ctrl-C while Python imports typer, rich and the commands (the first few hundred
milliseconds) must exit 130 without a traceback, so the SIGINT handler is
installed as this module is imported, before any of that; :func:`flobs.cli.main`
takes over once the commands are loaded. (A SIGINT before this module runs, while
the interpreter itself starts and imports ``site``, is Python's to handle: it prints
"Fatal Python error: init_import_site" and a traceback, and nothing flobs ships can run
earlier without a .pth file that would act in every program of the environment.)

Only modules ``site`` has already loaded are imported before the handler is in place:
``signal`` would first import enum, functools and collections (about 9 ms, a window in
which Ctrl-C still printed a traceback), while ``_signal``, the C module under it, is
loaded by the interpreter before any Python code runs.
"""

import _signal  # type: ignore[import-not-found]  # no typeshed stub; CPython's C module
import os


def interrupted_before_work(signum: int, frame: object) -> None:
    """Nothing is written yet (or any more): leave at once, with 130."""
    os.write(2, b"interrupted\n")
    os._exit(130)


_signal.signal(_signal.SIGINT, interrupted_before_work)


def main() -> None:
    _signal.signal(_signal.SIGINT, interrupted_before_work)
    from flobs.cli import main as run

    run()


if __name__ == "__main__":
    main()
