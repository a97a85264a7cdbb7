"""The timing harness, budgets and verdicts, and the report."""
