"""``python -m trm_rl.cli``: the ``trm-rl`` command."""

from trm_rl.cli import main

raise SystemExit(main())
