"""One worker process of ``optuna-nas worker`` (the launcher starts it; not for direct use)."""

from __future__ import annotations

import sys

from optuna_nas.worker._launch import child_main

sys.exit(child_main())
