from services.dashboard.service import main

raise SystemExit(main())
