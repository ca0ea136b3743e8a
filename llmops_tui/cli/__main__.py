import sys

from llmops_tui.cli import main

sys.exit(main())
