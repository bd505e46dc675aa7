"""Assistants: natural-language invoice drafting (the offline rule parser in `parser/`), and later the
MCP server, LLM providers and approvals of issue 19. Nothing here seals: a draft becomes an invoice
only through the fiscal pipeline, after a human's approval."""
