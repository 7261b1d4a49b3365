"""The exit codes of every command (docs/commands.md): the contract scripts and CI gates rely on."""

OK = 0
VIOLATIONS = 1  # only where a command judges data: `check` found violations
USAGE = 2  # usage, configuration, input or output errors, and services that cannot be reached
INTERNAL = 70  # EX_SOFTWARE: a bug (--debug shows the traceback)
STATE_LOST = 75  # EX_TEMPFAIL: the worker's state store lost data; restarted, it reads the input again
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), also for commands that run until interrupted
PIPE = 141  # 128 + SIGPIPE: the reader of stdout went away (`... | head`), as for any Unix filter
