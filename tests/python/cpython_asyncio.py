#!/usr/bin/env python3
"""Run CPython's own Lib/test/test_asyncio against one event loop.

    python3 tests/python/cpython_asyncio.py [--loop tapio|asyncio]
        [--python PYTHON|all ...] [-m MODULE ...] [-k PATTERN ...]
        [-j JOBS] [--timeout SECONDS] [--list-skips] [--no-skips] [-v]

Every module of the interpreter's test.test_asyncio package runs whole, each
in its own child process (isolation, and a hung test costs one module's
process, not the run). In that process the stock policy's loop factory
(asyncio.DefaultEventLoopPolicy._loop_factory) makes loops of the chosen
kind, so asyncio.new_event_loop(), asyncio.run(), asyncio.Runner and
unittest.IsolatedAsyncioTestCase get one even after a test resets the policy
with set_event_loop_policy(None). Test classes that bind a concrete stock loop
through an overridable hook (create_event_loop, new_loop: the Select/Poll/
EPoll variants of one mixin) are replaced by one "Chosen<name>" class whose
hook makes the chosen loop; the setUp/new_loop hooks that build a runnable
stock loop with mocks for tests of the public API (test_runners,
test_pep492, test_base_events' BaseEventLoopWithSelectorTests, test_unix_events'
SelectorEventLoopUnixSocketTests) make the chosen loop too (MODULE_BINDINGS).

The harness counts the chosen loops each test creates. A test that made at
least one ran on the chosen loop; a test that made none (it runs on
test_utils.TestLoop, on mocks, or on an explicitly built
asyncio.SelectorEventLoop) is loop-independent and is reported apart: it does
not test tapio.

--loop asyncio runs stock asyncio and must pass everything: that checks the
harness. --loop tapio runs tapio (from the repository's python/ directory)
and skips the tests listed, with the private attribute each reads, in
cpython_skips.py. --python all runs every interpreter found (pyenv's and
python3 on PATH, through scripts/find-pythons.sh); one without Lib/test says so
on a line of its own and is not a failure. Each interpreter's summary tells
the tests on the chosen loop, the loop-independent ones and the skips apart;
the last line printed is "N passed, N failed, N skipped" over every
interpreter (passes on the chosen loop only; failures and skips of any test),
and the exit status is non-zero on failures.
"""

import argparse
import faulthandler
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PKG = 'test.test_asyncio'

# Seconds a module's process may take in all before it is killed (its
# remaining tests count as failed). Each test also has --timeout.
MODULE_DEADLINE = 600


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--loop', choices=['tapio', 'asyncio'], default='tapio')
    p.add_argument('--python', action='append', default=[],
                   help="interpreter(s) to run the tests with; 'all' for "
                        "every one found (default: this one)")
    p.add_argument('-m', '--module', dest='modules', action='append',
                   default=[], metavar='MODULE',
                   help='run only this test_asyncio module (test_tasks or '
                        'tasks); repeatable')
    p.add_argument('-k', dest='patterns', action='append', default=[],
                   metavar='PATTERN',
                   help='run only tests whose id matches (as unittest -k)')
    p.add_argument('-j', '--jobs', type=int, default=2,
                   help='modules run at once (default 2)')
    p.add_argument('--list-skips', action='store_true',
                   help="print tapio's skip list with reasons and exit")
    p.add_argument('--no-skips', action='store_true',
                   help='run the skip-listed tests too (to prune the list)')
    p.add_argument('--timeout', type=float, default=120.0,
                   help='seconds one test may take before its module is '
                        'aborted with a traceback (default 120)')
    p.add_argument('--slowest', type=int, default=5,
                   help='list this many slowest tests (default 5)')
    p.add_argument('-v', '--verbose', action='store_true')
    # Internal: run one module in this process, results to a file.
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--results', help=argparse.SUPPRESS)
    p.add_argument('--done', help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------
# The worker: one module in this process.

def k_patterns(patterns):
    # As unittest's -k: a pattern without a wildcard matches as a substring.
    return [p if '*' in p else f'*{p}*' for p in patterns]


class Counter:
    """The chosen loops made since the current test started."""
    loops = 0


def chosen_factory(name):
    """The function that makes a new loop of the chosen kind, counted."""
    import asyncio
    if name == 'asyncio':
        stock = asyncio.DefaultEventLoopPolicy._loop_factory

        def make_loop():
            Counter.loops += 1
            return stock()
        return make_loop
    sys.path.insert(0, os.path.join(REPO, 'python'))
    try:
        import tapio
    except ImportError as exc:      # unbuilt: no extension for this python
        sys.exit(f'error: cannot import tapio from {REPO}/python with '
                 f'{sys.executable} ({exc}); build it for this interpreter '
                 'first as the README says.')
    # Count every tapio loop, however it is made.
    init = tapio.Loop.__init__

    def counting_init(self, *args, **kwargs):
        Counter.loops += 1
        init(self, *args, **kwargs)
    tapio.Loop.__init__ = counting_init
    return tapio.Loop


def install_factory(factory):
    """The stock policy class (and so asyncio.new_event_loop, asyncio.run,
    Runner, IsolatedAsyncioTestCase) makes loops with factory."""
    import asyncio
    import warnings
    with warnings.catch_warnings():     # 3.14 deprecates the policies
        warnings.simplefilter('ignore', DeprecationWarning)
        asyncio.DefaultEventLoopPolicy._loop_factory = staticmethod(factory)
        asyncio.set_event_loop_policy(None)


LOOP_HOOKS = ('create_event_loop', 'new_loop')


def makes_stock_loop(hook):
    """Whether a hook builds a concrete stock loop (not the policy's, not
    a mock): its source calls SelectorEventLoop(...) or
    ProactorEventLoop(...)."""
    import inspect
    if hook is None:
        return False
    try:
        src = inspect.getsource(hook)
    except (OSError, TypeError):
        return False
    return 'SelectorEventLoop(' in src or 'ProactorEventLoop(' in src


def bind_hook_classes(module, factory):
    """Replace the classes that make a concrete stock loop in a hook.

    Classes defining a loop hook are grouped by their bases (the Select,
    Poll and EPoll variants of one mixin); each group becomes one class,
    "Chosen" + the name without its selector prefix, whose hook makes the
    chosen loop. Returns {replaced class name: chosen class name}."""
    import unittest
    groups = {}
    for name, obj in list(vars(module).items()):
        if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and obj.__module__ == module.__name__
                and any(makes_stock_loop(vars(obj).get(h))
                        for h in LOOP_HOOKS)):
            groups.setdefault(obj.__bases__, []).append(name)
    replaced = {}
    for names in groups.values():
        classes = [getattr(module, n) for n in names]
        live = [c for c in classes if not getattr(c, '__unittest_skip__',
                                                  False)]
        if not live:
            continue
        base = live[0]
        short = base.__name__
        for prefix in ('Selector', 'Select', 'EPoll', 'Poll'):
            if short.startswith(prefix):
                short = short[len(prefix):]
                break
        short = short.replace('Selector', '')
        chosen_name = 'Chosen' + short
        # Tests a variant adds that the first lacks would be lost: keep
        # them by inheriting from every live variant.
        hooks = {h: (lambda self: factory()) for h in LOOP_HOOKS}
        chosen = type(chosen_name, tuple(live), hooks)
        chosen.__module__ = module.__name__
        chosen.__qualname__ = chosen_name
        setattr(module, chosen_name, chosen)
        for c in classes:
            delattr(module, c.__name__)
            replaced[c.__name__] = chosen_name
    return replaced


def bind_runners(module, factory):
    """test_runners: BaseTest.new_loop, the policy's loop factory, makes a
    stock BaseEventLoop with a mocked selector; the chosen loop takes its
    place with the same public instrumentation (shutdown_ag_run tells
    tearDown that asyncio.run called shutdown_asyncgens)."""
    def new_loop(self):
        loop = factory()
        loop.shutdown_ag_run = False
        shutdown_asyncgens = loop.shutdown_asyncgens

        async def recording_shutdown_asyncgens():
            loop.shutdown_ag_run = True
            await shutdown_asyncgens()
        loop.shutdown_asyncgens = recording_shutdown_asyncgens
        return loop
    module.BaseTest.new_loop = new_loop
    return {'BaseTest.new_loop': 'the chosen loop'}


def bind_setup(*class_names):
    """The named classes' setUp is `super().setUp(); self.loop = <a stock
    loop, a mocked BaseEventLoop in test_pep492>; self.set_event_loop(
    self.loop)`: the chosen loop takes the stock loop's place."""
    def bind(module, factory):
        setup = module.test_utils.TestCase.setUp
        bound = {}
        for name in class_names:
            cls = getattr(module, name)

            def setUp(self):
                setup(self)
                self.loop = factory()
                self.set_event_loop(self.loop)
            cls.setUp = setUp
            bound[f'{name}.setUp'] = 'the chosen loop'
        return bound
    return bind


# Modules whose tests make a runnable stock loop with mocks in a hook of
# their own: what binds the chosen loop there instead.
MODULE_BINDINGS = {
    'test_runners': bind_runners,
    # create_connection/create_server/create_datagram_endpoint/getaddrinfo
    # on a SelectorEventLoop.
    'test_base_events': bind_setup('BaseEventLoopWithSelectorTests'),
    # BaseTest.setUp: a BaseEventLoop with a mocked selector.
    'test_pep492': bind_setup('BaseTest'),
    # create_unix_server/connection's checks on a SelectorEventLoop.
    # (SelectorEventLoopSignalTests stay on their stock loop: every one
    # mocks asyncio.unix_events.signal or calls the loop's private
    # _check_signal/_handle_signal.)
    'test_unix_events': bind_setup('SelectorEventLoopUnixSocketTests'),
}


def short_id(test):
    tid = test.id()
    return tid[len(PKG) + 1:] if tid.startswith(PKG + '.') else tid


def iter_tests(suite):
    import unittest
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def filter_suite(suite, keep):
    """A flat-by-class suite of the tests keep(test) accepts."""
    import unittest
    out = unittest.TestSuite()
    for t in iter_tests(suite):
        if keep(t):
            out.addTest(t)
    return out


def apply_skips(suite, skips, used):
    """Mark each skip-listed test (by short id) as skipped."""
    import unittest
    for t in iter_tests(suite):
        tid = short_id(t)
        for pattern, reason in skips.items():
            if fnmatch.fnmatchcase(tid, pattern):
                used.add(pattern)
                method = getattr(t, t._testMethodName)
                # Per instance: other variants of the class keep the test.
                setattr(t, t._testMethodName,
                        unittest.skip('cpython_skips: ' + reason)(method))
                break


def make_result_class(results_file, timeout):
    import unittest

    class RecordingResult(unittest.TestResult):
        """Writes one JSON line per finished test, with its loop count."""

        def startTest(self, test):
            # A C-level watchdog: fires even if the loop never returns.
            faulthandler.dump_traceback_later(timeout, exit=True)
            self._outcome_ = 'pass'
            self._detail_ = ''
            self._t0_ = time.monotonic()
            self.write({'id': short_id(test), 'event': 'start'})
            Counter.loops = 0
            super().startTest(test)

        def stopTest(self, test):
            super().stopTest(test)
            faulthandler.cancel_dump_traceback_later()
            self.write({'id': short_id(test), 'event': 'stop',
                        'outcome': self._outcome_, 'detail': self._detail_,
                        'loops': Counter.loops,
                        'time': time.monotonic() - self._t0_})

        def write(self, rec):
            results_file.write(json.dumps(rec) + '\n')
            results_file.flush()

        def _fail(self, test, err, kind):
            self._outcome_ = 'fail'
            self._detail_ += f'{kind}: ' + self._exc_info_to_string(err, test)

        def addError(self, test, err):
            super().addError(test, err)
            if not hasattr(self, '_outcome_') or isinstance(
                    test, unittest.suite._ErrorHolder):
                # setUpClass/setUpModule errors: no test is running.
                self.write({'id': test.id(), 'event': 'stop',
                            'outcome': 'fail', 'loops': Counter.loops,
                            'detail': self._exc_info_to_string(err, test),
                            'time': 0})
                return
            self._fail(test, err, 'ERROR')

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._fail(test, err, 'FAIL')

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                self._fail(subtest, err, 'FAIL (subtest)')

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._outcome_ = 'fail'
            self._detail_ += 'unexpected success\n'

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            if self._outcome_ != 'fail':
                self._outcome_ = 'skip'
                self._detail_ = reason

    return RecordingResult


def run_worker(args):
    import importlib
    import signal
    import unittest
    # CPython's tests expect Python's own SIGINT handler, which Python does
    # not install when the worker starts with SIGINT ignored (a background
    # job of a non-interactive shell): test_runners' interrupt tests would
    # wait for a KeyboardInterrupt that never comes.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        importlib.import_module(PKG + '.utils')
    except ImportError as exc:
        sys.exit(f'error: {sys.executable} has no {PKG} ({exc})')
    sys.path.insert(0, HERE)
    from cpython_skips import SKIPS
    factory = chosen_factory(args.loop)
    install_factory(factory)
    modname = args.worker
    results = open(args.results, 'a')
    try:
        module = importlib.import_module(f'{PKG}.{modname}')
    except unittest.SkipTest as exc:
        results.write(json.dumps({'event': 'module-skip', 'id': modname,
                                  'detail': str(exc)}) + '\n')
        results.write(json.dumps({'event': 'module-done', 'id': modname})
                      + '\n')
        return 0
    replaced = bind_hook_classes(module, factory)
    if modname in MODULE_BINDINGS:
        replaced.update(MODULE_BINDINGS[modname](module, factory))
    for old, new in sorted(replaced.items()):
        results.write(json.dumps({'event': 'replaced', 'id': modname,
                                  'old': old, 'new': new}) + '\n')
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(module)
    done = set()
    if args.done and os.path.exists(args.done):
        with open(args.done) as f:
            done = set(f.read().split())
    patterns = k_patterns(args.patterns)
    suite = filter_suite(suite, lambda t: short_id(t) not in done and (
        not patterns or any(fnmatch.fnmatchcase(short_id(t), p)
                            for p in patterns)))
    used = set()
    if args.loop == 'tapio' and not args.no_skips:
        apply_skips(suite, SKIPS, used)
    results.write(json.dumps({'event': 'skips-used', 'id': modname,
                              'patterns': sorted(used),
                              'listed': sorted(SKIPS)}) + '\n')
    results.flush()
    result = make_result_class(results, args.timeout)()
    # The tests write scratch files (sendfile data) into the cwd.
    with tempfile.TemporaryDirectory(prefix='tapio-cpython-') as tmp:
        os.chdir(tmp)
        suite.run(result)
        os.chdir(REPO)
    results.write(json.dumps({'event': 'module-done', 'id': modname}) + '\n')
    results.close()
    return 0


# ---------------------------------------------------------------------------
# The orchestrator: modules in child processes, per interpreter.

def find_interpreters():
    """The interpreters scripts/find-pythons.sh lists (Debian's python3 and
    pyenv's 3.11+); its 'missing' lines go to stderr as they are."""
    out = subprocess.run(['sh', os.path.join(REPO, 'scripts',
                                             'find-pythons.sh')],
                         stdout=subprocess.PIPE, text=True)
    return out.stdout.split()


def probe(py):
    """(version string, list of test modules) or (version, None, reason)."""
    code = ('import sys, os, pkgutil\n'
            'print("%d.%d.%d" % sys.version_info[:3])\n'
            'try:\n'
            f'    import {PKG} as p\n'
            'except Exception as e:\n'
            '    print("MISSING:", e); raise SystemExit\n'
            'print(" ".join(sorted(m.name for m in pkgutil.iter_modules('
            'p.__path__) if m.name.startswith("test_"))))\n')
    out = subprocess.run([py, '-c', code], capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.split('\n')
    version = lines[0] if lines and lines[0] else '?'
    if len(lines) < 2 or lines[1].startswith('MISSING') or out.returncode:
        reason = (lines[1].replace('MISSING: ', '')
                  if len(lines) > 1 and lines[1] else
                  (out.stderr.strip().splitlines() or ['?'])[-1])
        return version, None, reason
    return version, lines[1].split(), None


class ModuleRun:
    """One module's child process, restarted past a test that hangs."""

    def __init__(self, py, module, args, tmp):
        self.py, self.module, self.args = py, module, args
        self.results = os.path.join(tmp, f'{module}.jsonl')
        self.done_file = os.path.join(tmp, f'{module}.done')
        self.log = os.path.join(tmp, f'{module}.log')
        self.records = {}       # id -> stop record
        self.events = []        # other records
        self.crashes = []       # (test id, log tail)
        self.started = time.monotonic()
        self.proc = None
        self.offset = 0
        self.current = None
        self.finished = False
        self.spawn()

    def spawn(self):
        cmd = [self.py, os.path.abspath(__file__), '--worker', self.module,
               '--results', self.results, '--done', self.done_file,
               '--loop', self.args.loop, '--timeout', str(self.args.timeout)]
        for p in self.args.patterns:
            cmd += ['-k', p]
        if self.args.no_skips:
            cmd.append('--no-skips')
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [os.path.join(REPO, 'python')] +
            [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
        env.pop('PYTHONASYNCIODEBUG', None)
        self.logf = open(self.log, 'a')
        self.logf.write(f'--- {" ".join(cmd)}\n')
        self.logf.flush()
        self.proc = subprocess.Popen(cmd, stdout=self.logf,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=REPO,
                                     env=env)

    def read(self):
        if not os.path.exists(self.results):
            return
        with open(self.results) as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind('\n') + 1
        self.offset += end
        for line in data[:end].splitlines():
            rec = json.loads(line)
            ev = rec['event']
            if ev == 'start':
                self.current = rec['id']
            elif ev == 'stop':
                self.records[rec['id']] = rec
                self.current = None
            elif ev == 'module-done':
                self.finished = True
            else:
                self.events.append(rec)

    def poll(self):
        """True when the module has finished (possibly after restarts)."""
        rc = self.proc.poll()
        if rc is None:
            if time.monotonic() - self.started > MODULE_DEADLINE:
                self.proc.kill()
                self.proc.wait()
                self.read()
                self.crash('module deadline passed', deadline=True)
                return True
            return False
        self.logf.close()
        self.read()
        if self.finished:
            return True
        self.crash(f'worker exited with status {rc}')
        if self.current is None:
            return True        # died outside a test: import or fixtures
        # Continue after the test that crashed or hung.
        with open(self.done_file, 'w') as f:
            f.write('\n'.join(list(self.records) + [self.current]))
        self.current = None
        self.spawn()
        return False

    def crash(self, why, deadline=False):
        with open(self.log) as f:
            tail = f.read()[-6000:]
        tail = tail[tail.rfind('\n--- ') + 1:]    # the last attempt's
        tid = self.current or f'{self.module} (outside any test)'
        hung = 'Timeout (' in tail
        if hung:
            why = f'timed out after {self.args.timeout:g}s'
        self.records[tid] = {'id': tid, 'event': 'stop', 'outcome': 'fail',
                             'loops': 0,
                             'time': self.args.timeout if hung else 0,
                             'detail': f'{why}; log tail:\n{tail}'}


def run_interpreter(py, args):
    """Run the modules with py; returns a summary dict."""
    version, modules, reason = probe(py)
    label = f'python {version} ({py})'
    if modules is None:
        print(f'{label}: NOT TESTED, it has no Lib/test/test_asyncio '
              f'({reason}): this interpreter does not ship CPython\'s test '
              'package (Debian: apt-get install libpython3.X-testsuite)',
              flush=True)
        return None
    if args.modules:
        wanted = ['test_' + m if not m.startswith('test_') else m
                  for m in args.modules]
        missing = [m for m in wanted if m not in modules]
        for m in missing:
            print(f'{label}: no module {PKG}.{m}')
        modules = [m for m in wanted if m in modules]
    print(f'=== {label}: {len(modules)} modules, loop {args.loop}',
          flush=True)
    t0 = time.monotonic()
    runs = []
    with tempfile.TemporaryDirectory(prefix='tapio-cpython-run-') as tmp:
        pending = list(modules)
        active = []
        while pending or active:
            while pending and len(active) < max(1, args.jobs):
                active.append(ModuleRun(py, pending.pop(0), args, tmp))
            time.sleep(0.1)
            for run in list(active):
                if run.poll():
                    active.remove(run)
                    runs.append(run)
                    report_module(run, args)
    return summarize(label, runs, args, time.monotonic() - t0)


def report_module(run, args):
    recs = run.records.values()
    n = {k: sum(1 for r in recs if r['outcome'] == k)
         for k in ('pass', 'fail', 'skip')}
    on = sum(1 for r in recs if r['loops'] and r['outcome'] == 'pass')
    mskip = [e for e in run.events if e['event'] == 'module-skip']
    extra = f' (skipped at import: {mskip[0]["detail"]})' if mskip else ''
    print(f'{run.module}: {n["pass"]} passed ({on} on the chosen loop), '
          f'{n["fail"]} failed, {n["skip"]} skipped, '
          f'{time.monotonic() - run.started:.0f}s{extra}', flush=True)
    if args.verbose:
        for r in sorted(recs, key=lambda r: r['id']):
            why = f' ({r["detail"]})' if r['outcome'] == 'skip' else ''
            print(f'    {r["id"]}: {r["outcome"]} loops={r["loops"]}{why}')


def summarize(label, runs, args, elapsed):
    recs = [r for run in runs for r in run.records.values()]
    fails = [r for r in recs if r['outcome'] == 'fail']
    on = [r for r in recs if r['loops']]
    off = [r for r in recs if not r['loops']]
    passed_on = sum(1 for r in on if r['outcome'] == 'pass')
    passed_off = sum(1 for r in off if r['outcome'] == 'pass')
    ours = [r for r in recs if r['outcome'] == 'skip'
            and r['detail'].startswith('cpython_skips: ')]
    theirs = [r for r in recs if r['outcome'] == 'skip'
              and not r['detail'].startswith('cpython_skips: ')]
    for r in sorted(fails, key=lambda r: r['id']):
        print(f'\nFAILED {r["id"]} (loops={r["loops"]})\n{r["detail"]}')
    replaced = [e for run in runs for e in run.events
                if e['event'] == 'replaced']
    if replaced:
        print('\nhook classes bound to the chosen loop: ' + ', '.join(
            f'{e["id"]}.{e["old"]}->{e["new"]}' for e in replaced))
    used = {p for run in runs for e in run.events
            if e['event'] == 'skips-used' for p in e['patterns']}
    # The skip list as this interpreter's workers read it.
    listed = {p for run in runs for e in run.events
              if e['event'] == 'skips-used' for p in e['listed']}
    if (args.loop == 'tapio' and not args.no_skips and not args.modules
            and not args.patterns):
        for pattern in sorted(listed - used):
            print(f'note: skip pattern matches no test of this '
                  f'interpreter: {pattern}')
    slow = sorted(recs, key=lambda r: -r['time'])[:args.slowest]
    if slow:
        print('slowest: ' + ', '.join(f'{r["id"]} {r["time"]:.1f}s'
                                       for r in slow))
    print(f'{label}, loop {args.loop}, {elapsed:.0f}s:\n'
          f'  on the chosen loop: {passed_on} passed, '
          f'{sum(1 for r in on if r["outcome"] == "fail")} failed\n'
          f'  loop-independent (made no {args.loop} loop): {passed_off} '
          f'passed, {sum(1 for r in off if r["outcome"] == "fail")} failed\n'
          f'  skipped: {len(ours)} by cpython_skips.py, {len(theirs)} by '
          f'CPython\'s own conditions (platform, resources)', flush=True)
    print(f'{label} {args.loop}: {passed_on} passed, {len(fails)} failed, '
          f'{len(ours) + len(theirs)} skipped', flush=True)
    return {'passed': passed_on, 'failed': len(fails),
            'skipped': len(ours) + len(theirs), 'independent': passed_off,
            'ran': len(recs)}


def list_skips(skips):
    for pattern, reason in skips.items():
        print(f'{pattern}\n    {reason}')
    print(f'{len(skips)} entries')


def main(args):
    if args.worker:
        return run_worker(args)
    sys.path.insert(0, HERE)
    from cpython_skips import SKIPS
    if args.list_skips:
        list_skips(SKIPS)
        return 0
    pythons = args.python or [sys.executable]
    if 'all' in pythons:
        pythons = find_interpreters()
    total = {'passed': 0, 'failed': 0, 'skipped': 0, 'ran': 0}
    tested = 0
    for py in pythons:
        summary = run_interpreter(py, args)
        if summary is None:     # no Lib/test: said so, not a failure
            continue
        tested += 1
        for k in total:
            total[k] += summary[k]
    if tested and not total['ran']:     # a -m or -k that matched nothing
        total['failed'] += 1
        print('no test ran', flush=True)
    print(f'{total["passed"]} passed, {total["failed"]} failed, '
          f'{total["skipped"]} skipped', flush=True)
    return 1 if total['failed'] else 0


if __name__ == '__main__':
    sys.exit(main(parse_args()))
