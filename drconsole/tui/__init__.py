"""The Textual console. Screens and widgets only: all work goes through the runner, the
catalog and the run store of the core, on workers that report with messages."""
