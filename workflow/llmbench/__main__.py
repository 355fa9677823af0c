from llmbench.cli import main

raise SystemExit(main())
