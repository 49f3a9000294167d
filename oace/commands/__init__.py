"""One module per `oace` subcommand; each exposes `register(subparsers)`."""
