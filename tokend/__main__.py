"""``python -m tokend``: what the login item and ``tokend start`` run."""

from tokend.cli import main

raise SystemExit(main())
