"""`python -m conveyor.demo`: run the event-driven example against a real job service."""

from conveyor.demo import main

raise SystemExit(main())
