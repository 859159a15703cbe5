from superalign.cli import main

raise SystemExit(main())
