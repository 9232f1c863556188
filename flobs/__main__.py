"""The `flobs` program's entry point, kept free of imports.

Ctrl-C while Python imports typer, rich and the commands (the first few hundred
milliseconds) must exit 130 without a traceback, so the SIGINT handler is
installed here, before any of that is imported; :func:`flobs.cli.main` takes over.
"""

import os
import signal


def _interrupted_while_starting(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    raise SystemExit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from flobs.cli import main as run

    run()


if __name__ == "__main__":
    main()
