"""Ways into codesense besides the CLI and `/v1/ask`: the OpenAI-compatible chat endpoint, the MCP server,
and `codesense explain` (the ML concepts, read from the same Markdown as `docs/`)."""
