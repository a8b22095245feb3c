"""Command line: ``llm-as-rnn run | eval | trace | memory`` (one module per command).

Errors a user can fix print one line (``error: ...``) and exit with 2, before
anything is written to the database. ``--json`` output goes to stdout alone;
logs and progress go to stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence

from llm_as_rnn.errors import USER_ERRORS, cli_message
from llm_as_rnn.frontends.cli.eval import eval_command
from llm_as_rnn.frontends.cli.flags import EXIT_USAGE
from llm_as_rnn.frontends.cli.memory import memory_command
from llm_as_rnn.frontends.cli.output import report_failure
from llm_as_rnn.frontends.cli.parser import build_parser, parse_args
from llm_as_rnn.frontends.cli.run import run_command
from llm_as_rnn.frontends.cli.trace import trace_command
from llm_as_rnn.runtime.quiet import quiet_libraries, show_own_logs
from llm_as_rnn.runtime.secrets import redact_output


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    redact_output()
    quiet_libraries()
    show_own_logs()
    try:
        args = parse_args(argv)
        if args.command == "run":
            return asyncio.run(run_command(args))
        if args.command == "eval":
            return asyncio.run(eval_command(args, argv))
        if args.command == "trace":
            return asyncio.run(trace_command(args))
        if args.command == "memory":
            return asyncio.run(memory_command(args))
    except USER_ERRORS as exc:
        print(f"error: {cli_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`--json | head -n 1`): stop quietly; finished steps are saved.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # anything else, from any path (cleanup included): one line
        if os.environ.get("LLM_AS_RNN_DEBUG"):
            raise
        report_failure(exc, "finished steps are saved")
        return 1
    return 0


__all__ = ["build_parser", "main"]


if __name__ == "__main__":
    raise SystemExit(main())
