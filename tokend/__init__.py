"""tokend: know where your AI coding tokens go.

A local daemon that tails the logs Claude Code, Codex CLI and Gemini CLI already write,
keeps the usage in SQLite and tells how much of the 5-hour and weekly windows is left.
"""

__version__ = "0.1.0"
