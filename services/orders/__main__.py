from services.orders.service import main

raise SystemExit(main())
