from oakpipe.cli import main

raise SystemExit(main())
