import sys

from services.chaos.cli import main

sys.exit(main())
