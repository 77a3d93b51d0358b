from services.inventory.service import main

raise SystemExit(main())
