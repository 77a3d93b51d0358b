from services.shipping.service import main

raise SystemExit(main())
