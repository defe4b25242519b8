from anbu.cli import main

raise SystemExit(main())
