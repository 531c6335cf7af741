"""Running ``mlops`` in-process from a test: exit status and what it printed."""

from __future__ import annotations

WIDTH = 200


def invoke(capsys, *args: str, flat: bool = False) -> tuple[int, str, str]:
    """``mlops *args``: (exit status, stdout, stderr); ``flat`` joins wrapped lines."""
    from mlops.cli import output
    from mlops.cli.app import main

    # The consoles are made once per process, as wide as the terminal was then: a fixed width
    # keeps lines from wrapping differently depending on which test ran first.
    widths = output.console._width, output.err_console._width
    output.console._width = output.err_console._width = WIDTH
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    else:  # pragma: no cover - click always exits
        code = 0
    finally:
        output.console._width, output.err_console._width = widths
    out = capsys.readouterr()
    if flat:
        return code, " ".join(out.out.split()), " ".join(out.err.split())
    return code, out.out, out.err
