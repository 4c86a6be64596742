# docs_examples.py: run the examples of docs/api.md against a real `dualkd serve`
# (the rules are in docs/api.md, "How the examples are tested").
#
#   docs_examples.py setup DOC DIR   run DOC's `<!-- example: setup -->` block in a fresh DIR
#                                    (a repository, a teacher, a store, tokens) and keep
#                                    the variables it sets in DIR/vars.json
#   docs_examples.py run DOC DIR     copy DIR, start the `<!-- example: server -->` command,
#                                    run every ```console block's commands in order, check
#                                    exit status and HTTP statuses, and that every path of
#                                    docs/openapi.yaml was reached by some example
#
# Every HTTP status an example caused is read from the server's own metrics
# (dualkd_http_requests_total before and after the command), so the commands run
# exactly as written. Needs $DUALKD_BIN and $DUALKD_SOURCE (set by ctest).
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dkserve  # noqa: E402

DOC_HOST = "127.0.0.1:8080"  # the address the examples are written for
LEARNED_HEADERS = ("location", "etag")  # values that differ per run, replaced in later commands


class Command:
    def __init__(self, line, text):
        self.line, self.text, self.output = line, text, []


class Block:
    def __init__(self, line, directive):
        self.line, self.directive, self.commands = line, directive, []


def parse(path):
    """The ```console blocks of a Markdown file, each with its directive (or None)."""
    blocks, block, pending, fence = [], None, None, None
    for n, raw in enumerate(open(path, encoding="utf-8"), 1):
        line = raw.rstrip("\n")
        if block is None and fence is None:
            m = re.match(r"^<!--\s*example:\s*(.*?)\s*-->\s*$", line)
            if m:
                pending = (n, m.group(1))
                continue
            m = re.match(r"^(`{3,})\s*(\S*)", line)
            if m:
                fence = m.group(1)
                if m.group(2) == "console":
                    block = Block(n, pending[1] if pending else None)
                elif pending:
                    raise SystemExit("%s:%d: the example directive must precede a ```console block"
                                     % (path, pending[0]))
                pending = None
            elif line.strip() and pending:
                raise SystemExit("%s:%d: the example directive must be right before its block"
                                 % (path, pending[0]))
            continue
        if line.startswith(fence) and line.strip() == fence:
            if block is not None:
                blocks.append(block)
            block, fence = None, None
            continue
        if block is None:
            continue
        continuing = block.commands and block.commands[-1].text.endswith("\\") \
            and not block.commands[-1].output
        if continuing:
            block.commands[-1].text += "\n" + line
        elif line.startswith("$ "):
            block.commands.append(Command(n, line[2:]))
        elif not block.commands:
            raise SystemExit("%s:%d: a ```console block starts with a '$ ' command" % (path, n))
        else:
            block.commands[-1].output.append(line)
    return blocks


def statuses(lines):
    """The HTTP statuses a transcript shows: status lines, problem+json "status"
    members, and lines of bare codes (curl -w '%{http_code}')."""
    out = set()
    for line in lines:
        m = re.match(r"^HTTP/[\d.]+ (\d{3})\b", line)
        if m:
            out.add(int(m.group(1)))
            continue
        for m in re.finditer(r'"status": (\d{3})\b', line):
            out.add(int(m.group(1)))
        if re.fullmatch(r"\s*(\d{3}\s*)+", line):
            out.update(int(c) for c in line.split())
    return out


def header_values(lines, name):
    for line in lines:
        m = re.match(r"^([A-Za-z-]+):\s*(.*?)\s*$", line)
        if m and m.group(1).lower() == name:
            return m.group(2).removeprefix("W/").strip('"')
    return None


def tool_dir(work):
    """bin/ with dualkd and python3 (the Debian one the tests use) first in PATH."""
    d = os.path.join(work, ".bin")
    os.makedirs(d, exist_ok=True)
    for name, target in (("dualkd", dkserve.binary()),
                         ("python3", os.environ.get("PYTHON", "/usr/bin/python3"))):
        if not os.path.exists(os.path.join(d, name)):
            os.symlink(target, os.path.join(d, name))
    return d


def environment(work, extra):
    env = dict(os.environ, **extra)
    env["PATH"] = tool_dir(work) + os.pathsep + env.get("PATH", "")
    return env


def setup(doc, fixture):
    blocks = [b for b in parse(doc) if b.directive == "setup"]
    if len(blocks) != 1:
        raise SystemExit("%s: needs exactly one '<!-- example: setup -->' block" % doc)
    shutil.rmtree(fixture, ignore_errors=True)
    os.makedirs(fixture)
    script = "set -euo pipefail\nenv -0 > .env.before\nset -a\n"
    script += "\n".join(c.text for c in blocks[0].commands)
    script += "\nenv -0 > .env.after\n"
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-c", script], cwd=fixture, env=environment(fixture, {}),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit("%s:%d: the setup block failed (exit %d):\n%s%s"
                         % (doc, blocks[0].line, r.returncode, r.stdout, r.stderr))

    def read(name):
        items = open(os.path.join(fixture, name), "rb").read().decode().split("\0")
        return dict(i.split("=", 1) for i in items if "=" in i)
    before, after = read(".env.before"), read(".env.after")
    new = {k: v for k, v in after.items() if before.get(k) != v and k not in ("_", "SHLVL", "OLDPWD")}
    json.dump(new, open(os.path.join(fixture, "vars.json"), "w"), indent=1)
    print("setup: %d commands in %.1f s; variables %s" % (len(blocks[0].commands),
                                                          time.monotonic() - t0, " ".join(sorted(new))))


class Runner:
    def __init__(self, doc, work, variables):
        self.doc, self.work, self.variables = doc, work, variables
        self.learned = {}  # transcript value -> value the server sent
        self.reached = set()
        self.passed, self.failed = 0, []

    def substitute(self, text, port):
        text = text.replace(DOC_HOST, "127.0.0.1:%d" % port)
        for shown in sorted(self.learned, key=len, reverse=True):
            text = text.replace(shown, self.learned[shown])
        return text

    @staticmethod
    def metrics_quiet(server):
        """Metrics read at a quiet moment, and the number of reads taken.

        A request's count lands when MHD completes it, which may be just after
        its client has the answer, and that holds for our own /metrics reads
        too. So read (20 ms apart) until, twice in a row, the other routes did
        not move and /metrics moved by exactly one (the read before): then every
        earlier request is counted, and only this last read is still to land."""
        last, reads, calm = server.metrics(), 1, 0
        for _ in range(200):
            time.sleep(0.02)
            now = server.metrics()
            reads += 1
            others = {k: v for k, v in now.items() if k[0] != "/metrics"} == \
                {k: v for k, v in last.items() if k[0] != "/metrics"}
            own = sum(v for k, v in now.items() if k[0] == "/metrics") - \
                sum(v for k, v in last.items() if k[0] == "/metrics")
            calm = calm + 1 if others and own == 1 else 0
            last = now
            if calm >= 2:
                break
        return last, reads

    def run_command(self, cmd, server, env):
        before, _ = self.metrics_quiet(server)
        text = self.substitute(cmd.text, server.port)
        r = subprocess.run(["bash", "-o", "pipefail", "-c", text], cwd=self.work, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           errors="replace", timeout=120)
        after, reads = self.metrics_quiet(server)
        caused = {}
        for key, count in after.items():
            caused[key] = count - before.get(key, 0)
        # our own reads after `before`: `before` itself has landed by now, the last has not
        caused[("/metrics", 200)] = caused.get(("/metrics", 200), 0) - reads
        caused = {k: v for k, v in caused.items() if v > 0}
        got = {status for (_, status) in caused}
        want = statuses(cmd.output)
        where = "%s:%d: %s" % (self.doc, cmd.line, cmd.text.split("\n")[0][:100])
        problem = None
        if r.returncode != 0:
            problem = "exit status %d" % r.returncode
        elif any(s >= 500 for s in got):
            problem = "the server answered %s" % sorted(got)
        elif want and got != want:
            problem = "the transcript shows HTTP %s, the server answered %s" % (
                sorted(want), sorted(got) or "nothing")
        elif not want and any(s >= 400 for s in got):
            problem = "the server answered %s; a transcript that shows no status expects success" \
                % sorted(got)
        self.learn(cmd.output, (r.stdout + r.stderr).splitlines())
        if problem:
            self.failed.append("%s\n    %s\n    output: %s" % (where, problem,
                                                              (r.stdout + r.stderr)[-1500:]))
            print("FAIL %s: %s" % (where, problem))
            return
        self.passed += 1
        self.reached.update(route for (route, _) in caused if route != "unmatched")
        print("ok   %s -> %s" % (where, " ".join(str(s) for s in sorted(got)) or "-"))

    def learn(self, shown_lines, actual_lines):
        """Values the transcript shows that differ per run (a job's Location, an
        ETag): later commands use the ones this server sent."""
        for name in LEARNED_HEADERS:
            shown, sent = header_values(shown_lines, name), header_values(actual_lines, name)
            if shown and sent and shown != sent and "..." not in shown:
                self.learned[shown] = sent

    def run_block(self, block, server, env):
        for cmd in block.commands:
            self.run_command(cmd, server, env)


def server_argv(block, port_text="127.0.0.1:0", extra=()):
    if len(block.commands) != 1:
        raise SystemExit("the '<!-- example: server -->' block must hold one command")
    argv = shlex.split(block.commands[0].text.replace("\\\n", " ").replace(DOC_HOST, port_text))
    if argv[:2] != ["dualkd", "serve"]:
        raise SystemExit("the server block runs 'dualkd serve', not %r" % argv[:2])
    return [dkserve.binary()] + argv[1:] + list(extra)


# Paths whose examples in docs/api.md are not `console` transcripts of this fixture yet,
# and the test that runs them instead. Shrink this list; never add a path without a test
# that runs its documented examples.
RUN_ELSEWHERE = {
    # tests/test_server_upload.c runs every curl line of these sections (its own fixture)
    "/v1/distill": "test_server_upload",
    "/v1/evaluate": "test_server_upload",
    "/v1/jobs/{id}/targets/{kind}": "test_server_upload",
    # tests/test_server_federation.c drives every route through real clients; the
    # "Federation" section's transcript is not yet a console example of this fixture
    "/v1/federation": "test_server_federation",
    "/v1/federation/{name}": "test_server_federation",
    "/v1/federation/{name}/status": "test_server_federation",
    "/v1/federation/{name}/join": "test_server_federation",
    "/v1/federation/{name}/global": "test_server_federation",
    "/v1/federation/{name}/rounds/{round}/updates": "test_server_federation",
}


def openapi_paths():
    """The paths of docs/openapi.yaml (top-level keys under 'paths:')."""
    source = os.environ.get("DUALKD_SOURCE", os.path.join(os.path.dirname(__file__), ".."))
    paths, inside = [], False
    for line in open(os.path.join(source, "docs", "openapi.yaml"), encoding="utf-8"):
        if re.match(r"^\S", line):
            inside = line.startswith("paths:")
        elif inside:
            m = re.match(r"^  (/\S*):\s*$", line)
            if m:
                paths.append(m.group(1))
    return paths


def run(doc, fixture):
    blocks = parse(doc)
    servers = [b for b in blocks if b.directive == "server"]
    if len(servers) != 1:
        raise SystemExit("%s: needs exactly one '<!-- example: server -->' block" % doc)
    work = tempfile.mkdtemp(prefix="dualkd-docs-")
    try:
        shutil.copytree(fixture, work, dirs_exist_ok=True, symlinks=True)
        variables = json.load(open(os.path.join(work, "vars.json")))
        env = environment(work, variables)
        runner = Runner(doc, work, variables)
        main = dkserve.Server(server_argv(servers[0]), work, env)
        try:
            for b in blocks:
                if b.directive in ("setup", "server"):
                    continue
                if b.directive is None:
                    runner.run_block(b, main, env)
                elif b.directive.startswith("serve "):
                    # this block needs other server options: a second server on the same files
                    extra = shlex.split(b.directive[len("serve "):])
                    other = dkserve.Server(server_argv(servers[0], extra=extra), work, env)
                    try:
                        runner.run_block(b, other, env)
                    finally:
                        other.stop()
                else:
                    raise SystemExit("%s:%d: unknown example directive '%s' (setup, server, "
                                     "serve OPTIONS)" % (doc, b.line, b.directive))
        finally:
            main.stop()
        missing = [p for p in openapi_paths() if p not in runner.reached and p not in RUN_ELSEWHERE]
        for p in missing:
            runner.failed.append("docs/openapi.yaml has %s, but no example in %s reached it: "
                                 "add a ```console example of it" % (p, doc))
        for f in runner.failed:
            print("\n" + f)
        print("\n%d passed, %d failed" % (runner.passed, len(runner.failed)))
        return 1 if runner.failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("setup", "run"):
        raise SystemExit("usage: docs_examples.py setup|run DOC DIR")
    if sys.argv[1] == "setup":
        setup(sys.argv[2], sys.argv[3])
    else:
        sys.exit(run(sys.argv[2], sys.argv[3]))
