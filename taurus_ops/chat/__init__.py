"""``taurus chat``: the coding assistant REPL on the Anthropic API. Every turn is saved."""
