"""The memory core: what every use case shares about a memory (its output shape, versions, the text that is
indexed, access checks, filters, fact patterns, summaries). Below the services, above the repositories."""
