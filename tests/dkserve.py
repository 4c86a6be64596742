# dkserve.py: start a real `dualkd serve` for the documentation tests
# (tests/docs_examples.py, tests/notebook_run.py), wait until it is ready, read its
# metrics, and stop it with SIGTERM checking it exits 0. Standard library only.
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request


def binary():
    """The dualkd under test ($DUALKD_BIN, set by ctest)."""
    b = os.environ.get("DUALKD_BIN")
    if not b or not os.access(b, os.X_OK):
        raise SystemExit("DUALKD_BIN is not set to the built dualkd (run through ctest)")
    return b


class Server:
    """argv: a `dualkd serve ...` command line with --listen 127.0.0.1:0, run in cwd."""

    def __init__(self, argv, cwd, env=None):
        self.argv = argv
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        first = self.proc.stderr.readline()
        self.log.append(first)
        # drain stderr so a chatty server (job children) never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", first)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("%s did not start: %s" % (" ".join(argv), "".join(self.log)))
        self.port = int(m.group(1))
        self.base = "http://127.0.0.1:%d" % self.port
        self._wait_ready()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def _wait_ready(self, seconds=120):
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:  # stores are verified in the background
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=10):
                    return
            except urllib.error.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("/readyz was not 200 within %d s" % seconds)

    def metrics(self):
        """{(route, status): count} of dualkd_http_requests_total."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=30) as r:
            text = r.read().decode()
        out = {}
        for m in re.finditer(r'^dualkd_http_requests_total\{route="([^"]*)",status="(\d+)"\} (\d+)$',
                             text, re.M):
            out[(m.group(1), int(m.group(2)))] = int(m.group(3))
        return out

    def stop(self):
        """SIGTERM, then the exit status must be 0 (a graceful stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("the server did not stop within 90 s of SIGTERM")
        if rc != 0:
            raise RuntimeError("the server exited %d after SIGTERM:\n%s" % (rc, "".join(self.log)))
