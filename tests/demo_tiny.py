# demo_tiny.py: `dualkd demo --tiny` end to end, as a user runs it: every stage as a real
# process (data, the shipped teacher, targets, `dualkd serve` on a free port, three site
# processes per method, two federations, `dualkd eval`), then what it leaves behind:
# results.json with every method at every site and traffic under a quarter of the
# original method's, a report whose index.html Chromium shows with its pictures, and
# no server or site process still running.
#
#   demo_tiny.py [KEEP_DIR]
#
# Needs $DUALKD_BIN (set by ctest). Exits 77 (skipped) only when chromium is missing.
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_browser  # noqa: E402  (the screenshot check of a report folder)

SKIP = 77


def check_results(run_dir):
    r = json.load(open(os.path.join(run_dir, "results.json")))
    sites = [s["name"] for s in r["sites"]]
    methods = {m["name"]: m for m in r["methods"]}
    assert sites == ["site-a", "site-b", "site-c"], sites
    assert list(methods) == ["teacher", "local", "fedavg-sup", "fedavg-dual"], list(methods)
    for m in methods.values():
        for s in sites:
            cell = m["sites"][s]
            assert 0 <= cell["mean_dice"] <= 1, (m["name"], s, cell["mean_dice"])
            assert set(cell["classes"]) == set(r["classes"]), cell["classes"]
    for name in ("fedavg-sup", "fedavg-dual"):
        b = methods[name]["bytes_per_round"]
        rounds = methods[name]["rounds"]
        for s in sites:  # the learning curve: the global of every round and the final one
            got = [p["round"] for p in methods[name]["sites"][s]["curve"]]
            assert got == list(range(rounds + 1)), (name, s, got)
        original = r["original_bytes_per_round"]
        ratio = (b["down"] + b["up"]) / (original["down"] + original["up"])
        print("%s: %.0f bytes down, %.0f up per site per round: %.3f of the original's"
              % (name, b["down"], b["up"], ratio))
        assert 0 < ratio <= 0.25, ratio  # issue #14: at most a quarter
    assert "FedAvg" in r["verdict"], r["verdict"]
    return sites


def no_process_left(run_dir):
    log = open(os.path.join(run_dir, "logs", "serve.log")).read()
    assert "dualkd serve: stopped" in log, "the server was not stopped gracefully:\n" + log
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read()
        except OSError:
            continue
        assert run_dir.encode() not in cmd, "still running: %s" % cmd.replace(b"\0", b" ")


def main():
    if shutil.which("chromium") is None:
        print("SKIP: Debian's chromium is not installed (scripts/bootstrap installs it)")
        return SKIP
    bin_ = os.path.abspath(os.environ.get("DUALKD_BIN", "build/dualkd"))
    keep = sys.argv[1] if len(sys.argv) > 1 else None
    work = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="demo_tiny-")
    # two folders that do not exist yet, as runs/demo in a fresh clone
    run_dir = os.path.join(work, "runs", "demo")
    report_browser.become_subreaper()
    try:
        p = subprocess.run([bin_, "demo", "--tiny", "--out", run_dir], capture_output=True,
                           text=True, timeout=900)
        print(p.stdout[-3000:], p.stderr[-3000:])
        assert p.returncode == 0, "dualkd demo --tiny exited %d" % p.returncode
        assert re.search(r"\[8/8\] results", p.stdout), "no results stage"
        assert "verdict: " in p.stdout and "demo: done in" in p.stdout
        sites = check_results(run_dir)
        no_process_left(run_dir)
        if not report_browser.pictures_show(os.path.join(run_dir, "report"), work, sites):
            keep = True
            print("FAIL: the browser does not show the demo report's pictures (%s)" % work)
            return 1
        print("ok: the demo ran every stage and its report shows in the browser")
        return 0
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
