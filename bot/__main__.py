"""``python -m bot`` is ``recon``."""

from bot.cli import main

raise SystemExit(main())
