"""`python -m services ...` is the `shop` command."""

from services.cli import main

raise SystemExit(main())
