"""``python -m llm_as_rnn``: the command line."""

from llm_as_rnn.frontends.cli import main

raise SystemExit(main())
