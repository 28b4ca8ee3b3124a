from bicimad.cli import main

raise SystemExit(main())
