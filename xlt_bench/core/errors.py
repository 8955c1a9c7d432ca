"""Errors the CLI turns into exit codes (DESIGN §2): bad input is exit 2 (a gate regression, exit 1, is a result, not
an error: see gate.GateResult.exit_code)."""

from __future__ import annotations


class InputError(Exception):
    """Bad input or config. The message names the file, line and field where they are known."""

    exit_code = 2

    def __init__(self, reason: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        self.reason, self.file, self.line, self.field = reason, file, line, field
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}{what}{reason}")


class RunTerminated(KeyboardInterrupt):
    """SIGTERM arrived during a run: handled like Ctrl-C (partial rows kept), exit status 143."""

    exit_code = 143
