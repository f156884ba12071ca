"""Loop micro-benchmarks, each loop in turn in one process:
call_soon throughput and call_later + cancel throughput.

Usage: python3 bench/py_loop_bench.py [--n N] [--rounds R]
Prints a markdown table with operations per second and ratios to uvloop.
"""
import argparse
import asyncio
import time


def call_soon_rate(loop, n):
    count = 0

    def callback():
        nonlocal count
        count += 1

    start = time.perf_counter()
    for _ in range(n):
        loop.call_soon(callback)
    loop.call_soon(loop.stop)
    loop.run_forever()
    elapsed = time.perf_counter() - start
    assert count == n, (count, n)
    return n / elapsed


def timer_cancel_rate(loop, n):
    start = time.perf_counter()
    for _ in range(n):
        loop.call_later(1000.0, print).cancel()
    elapsed = time.perf_counter() - start
    loop.call_soon(loop.stop)
    loop.run_forever()  # let the loop drop what was cancelled
    return n / elapsed


BENCHES = [("call_soon", call_soon_rate), ("call_later + cancel", timer_cancel_rate)]


def factories():
    found = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
        found["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    import tapio
    found["tapio"] = tapio.new_event_loop
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    loops = factories()
    rates = {}
    for bench, fn in BENCHES:
        for name, factory in loops.items():
            loop = factory()
            try:
                rates[bench, name] = max(fn(loop, args.n) for _ in range(args.rounds))
            finally:
                loop.close()
    names = list(loops)
    print("| benchmark | " + " | ".join(f"{n} ops/s" for n in names) + " | tapio / uvloop |")
    print("|---|" + "---:|" * (len(names) + 1))
    for bench, _ in BENCHES:
        cells = " | ".join(f"{rates[bench, n]:,.0f}" for n in names)
        ratio = (f"{rates[bench, 'tapio'] / rates[bench, 'uvloop']:.2f}"
                 if "uvloop" in loops else "n/a")
        print(f"| {bench} | {cells} | {ratio} |")


if __name__ == "__main__":
    main()
