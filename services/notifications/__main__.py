from services.notifications.service import main

raise SystemExit(main())
