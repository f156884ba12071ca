"""Run a Python program on tapio, unchanged:

    python3 run_on_tapio.py PROGRAM [ARGS...]

Installs tapio's event loop policy, so that the program's asyncio.run() and
asyncio.get_event_loop() make tapio loops, then runs PROGRAM as __main__ with
sys.argv and sys.path[0] as `python3 PROGRAM ARGS...` would set them. Each new
loop's class is reported on stderr, so that a test can see the program really
ran on tapio.
"""

import asyncio
import os
import runpy
import sys

REPORT_PREFIX = "[run_on_tapio] new event loop: "


def report_new_loops(policy):
    make_loop = policy.new_event_loop

    def new_event_loop():
        loop = make_loop()
        kind = type(loop)
        print(f"{REPORT_PREFIX}{kind.__module__}.{kind.__qualname__}", file=sys.stderr, flush=True)
        return loop

    policy.new_event_loop = new_event_loop


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    program = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    import tapio  # here, so that tests can import REPORT_PREFIX without tapio
    tapio.install()
    report_new_loops(asyncio.get_event_loop_policy())
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()
