from aiplatform.cli import main

raise SystemExit(main())
