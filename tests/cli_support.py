"""Running ``mlops`` in-process from a test: exit status and what it printed."""

from __future__ import annotations


def invoke(capsys, *args: str, flat: bool = False) -> tuple[int, str, str]:
    """``mlops *args``: (exit status, stdout, stderr); ``flat`` joins wrapped lines."""
    from mlops.cli.app import main

    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code or 0
    else:  # pragma: no cover - click always exits
        code = 0
    out = capsys.readouterr()
    if flat:
        return code, " ".join(out.out.split()), " ".join(out.err.split())
    return code, out.out, out.err
