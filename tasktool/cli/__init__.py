"""The Typer CLI. Modules here import nothing heavy at module level: start-up stays fast."""
