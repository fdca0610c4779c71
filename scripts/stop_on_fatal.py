"""A supervisord event listener for `make run`: when a program gives up, stop everything.

supervisord retries a program that dies within its `startsecs` after 1 s, 2 s, 3 s…
and gives up after `startretries` (FATAL): then nothing would serve while the
terminal looked alive, so this says why and has scripts/run.sh stop supervisord
and exit with status 1 (or, run without it, stops supervisord, its parent).
"""

from __future__ import annotations

import os
import signal
import sys

from supervisor import childutils


def main() -> None:
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        program = childutils.get_headers(payload).get("processname", "?")
        childutils.listener.ok(sys.stdout)
        if headers["eventname"] == "PROCESS_STATE_FATAL":
            print(
                f"make run: {program!r} keeps exiting as soon as it starts (its log is above); stopping everything.",
                file=sys.stderr,
                flush=True,
            )
            if os.environ.get("MAKE_RUN_PID"):
                os.kill(int(os.environ["MAKE_RUN_PID"]), signal.SIGUSR1)  # run.sh stops it and exits 1
            else:
                os.kill(os.getppid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
