"""llmops-tui: LLMOps on Prompt flow, in the terminal and in CI."""

__version__ = "0.1.0"
