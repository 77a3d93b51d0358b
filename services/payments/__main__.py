from services.payments.service import main

raise SystemExit(main())
