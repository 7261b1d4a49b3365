"""One module per `truthstream` command, each with `HELP`, `DESCRIPTION`, `add_arguments(parser)` and
`run(args) -> exit code`. Modules import only argparse and the settings at the top; what a command
needs to run is imported inside its `run`. Nothing imports a command but `connectors.cli`."""
