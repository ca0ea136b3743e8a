"""The Textual app: a keyboard-first front end over the headless core (``llmops_tui.core``).

Screens hold no sweep, metric or deploy logic: they call the core and show what it returns. Nothing on
the way to the first screen imports promptflow (the engine is imported lazily when a sweep starts).
"""
