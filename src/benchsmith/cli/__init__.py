"""The command line: a thin typer shell over benchsmith.api."""
