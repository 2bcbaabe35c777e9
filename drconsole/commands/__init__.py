"""Subcommands of the ``drconsole`` CLI; each module adds its parsers and handlers."""
