#!/usr/bin/env bash
# serve_vs_nginx.sh: download throughput and tail latency of `dualkd serve` against nginx
# serving the very same ~32 MiB .npy as a static file, both on loopback, both loaded with
# `wrk -t2 -c32 -d10s` back to back and alternated twice; then requests/s of /healthz and
# of the catalogue at 64 connections. A benchmark, not a test: it prints figures.
#
# usage: bench/serve_vs_nginx.sh [BUILD_DIR]     (run it under nice on a shared machine)
#        DURATION=10s (each wrk run), PERF_OUT=FILE (perf record -g of dualkd in round 1)
# Needs nginx and wrk (Debian; installed here if missing, not by scripts/bootstrap).
# The array: the float16 response target ([5][z][y][x]) of one synthetic volume on a
# 0.45 x 0.31 x 0.31 mm grid, 102 x 186 x 186 voxels: 33.7 MiB with its header.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dualkd=$(realpath "$build/dualkd")
duration=${DURATION:-10s}

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "serve_vs_nginx: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/serve_vs_nginx.XXXXXX)
chmod 755 "$work"   # nginx's workers run as nobody
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the store (a few seconds) ----
cd "$work"
echo '{"network": {"levels": 2, "base_width": 4, "pool": [[2, 2, 2]], "kernel": [[3, 3, 3], [3, 3, 3]]}, "patch": [16, 32, 32], "batch": 2, "steps": 2, "steps_per_epoch": 2, "checkpoint_every": 0}' > tiny.json
echo '{"name": "fine", "spacing": [0.45, 0.31, 0.31], "contrast": "dess"}' > fine.json
# The repository itself is synthesised on the profile's grid: precompute to a profile finer
# than the repository overruns a buffer (teacher/precompute.c, reported; not this script's).
"$dualkd" data synth --profile fine.json --n 2 --quiet --out repo.h5
"$dualkd" teacher train --data repo.h5 --out teacher.h5 --config tiny.json --threads 1 >/dev/null 2>&1
"$dualkd" teacher precompute --teacher teacher.h5 --data repo.h5 --profile fine.json --out stores \
  --passes 1 --threads 2 >/dev/null 2>&1
"$dualkd" token add --site bench --scope targets --tokens tokens.json > token.txt 2>/dev/null
token=$(cat token.txt)

# ---- dualkd serve (its defaults: 2 threads) ----
"$dualkd" serve --teacher teacher.h5 --store stores --tokens tokens.json --listen 127.0.0.1:0 \
  --rate 0 2> serve.log &
pids+=($!)
for _ in $(seq 100); do grep -q listening serve.log && break; sleep 0.1; done
dport=$(grep -o '127.0.0.1:[0-9]*' serve.log | head -1 | cut -d: -f2)
for _ in $(seq 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$dport/readyz")" = 200 ] && break
  sleep 0.1
done
sample=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$dport/v1/targets?profile=fine" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["samples"][0]["id"])')
path="/v1/targets/$sample/response?profile=fine"
mkdir -p www
curl -sf -H "Authorization: Bearer $token" -o www/array.npy "http://127.0.0.1:$dport$path"
size=$(stat -c %s www/array.npy)
chmod 644 www/array.npy

# ---- nginx: a static file, its own prefix and config, another loopback port ----
nport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > nginx.conf <<EOF
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  types { application/x-npy npy; }
  client_body_temp_path $work/tmp-body;
  proxy_temp_path $work/tmp-proxy;
  fastcgi_temp_path $work/tmp-fastcgi;
  uwsgi_temp_path $work/tmp-uwsgi;
  scgi_temp_path $work/tmp-scgi;
  server {
    listen 127.0.0.1:$nport;
    root $work/www;
  }
}
EOF
"$nginx" -p "$work" -c "$work/nginx.conf" -e "$work/nginx-error.log" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$nport/array.npy" && break; sleep 0.1; done
cmp <(curl -sf "http://127.0.0.1:$nport/array.npy") www/array.npy

# ---- measure ----
# wrk --latency: "Transfer/sec: 1.23GB" and "99%  12.34ms"; both to MB/s and ms.
run_wrk() { # name conns url [header...]
  local name=$1 conns=$2 url=$3; shift 3
  local out
  # --timeout: wrk's default 2 s would count a slow 32 MiB answer as an error, not a latency
  local threads=2; [ "$conns" -lt 2 ] && threads=1
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --timeout 60s --latency "$@" "$url")
  python3 - "$name" "$out" "$work/results.tsv" <<'PY'
import re, sys
name, out, results = sys.argv[1:4]
unit = {"B": 1e-6, "KB": 1024 / 1e6, "MB": 1024**2 / 1e6, "GB": 1024**3 / 1e6}
ms = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
t = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
p99 = re.search(r"^\s+99%\s+([\d.]+)(\w+)", out, re.M)
rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: .*", out)
done = int(re.search(r"(\d+) requests in", out).group(1))
p99_text = "%8.2f ms" % (float(p99.group(1)) * ms[p99.group(2)]) if done else "     n/a   "
print("%-22s %9.1f MB/s  p99 %s  %10.1f req/s  (%d completed)%s%s" % (
    name, float(t.group(1)) * unit[t.group(2)], p99_text, float(rps.group(1)), done,
    "  NON-2xx %s" % errors.group(1) if errors else "", "  " + sock.group(0) if sock else ""))
if not done:
    p99 = None
with open(results, "a") as f:
    f.write("%s\t%f\t%s\n" % (name.split(" (")[0], float(t.group(1)) * unit[t.group(2)],
                                float(p99.group(1)) * ms[p99.group(2)] if p99 else "nan"))
PY
}

echo "serve_vs_nginx: $(nproc) cores, $(uptime | sed 's/.*load/load/'); array $size bytes"
echo "wrk -t2 -c32 -d$duration --timeout 60s --latency, dualkd http://127.0.0.1:$dport$path (--threads 2 --rate 0),"
echo "nginx 2 workers sendfile http://127.0.0.1:$nport/array.npy"
for round in 1 2; do
  if [ "$round" = 1 ] && [ -n "${PERF_OUT:-}" ]; then # where the server's time goes
    perf record -g -o "$PERF_OUT" -p "${pids[0]}" -- sleep 8 >/dev/null 2>&1 &
    perf_pid=$!
  fi
  run_wrk "dualkd array ($round)" 32 "http://127.0.0.1:$dport$path" -H "Authorization: Bearer $token"
  [ -n "${perf_pid:-}" ] && { wait "$perf_pid" || true; perf_pid=; }
  run_wrk "nginx array ($round)" 32 "http://127.0.0.1:$nport/array.npy"
done
python3 - "$work/results.tsv" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
def mean(name, col):
    v = [float(r[col]) for r in rows if r[0] == name]
    return sum(v) / len(v)
mbps = mean("dualkd array", 1) / mean("nginx array", 1)
p99 = mean("dualkd array", 2) / mean("nginx array", 2)
print("dualkd/nginx (means of 2 runs): %.2fx the MB/s (goal >= 0.9), %sx the p99 (goal <= 2%s)"
      % (mbps, "%.2f" % p99 if p99 == p99 else "n/a", "" if p99 == p99
         else "; a run completed no request, so it has no p99"))
PY
echo "one connection (wrk -t1 -c1): the cost of one request without queueing"
run_wrk "dualkd array, 1 conn" 1 "http://127.0.0.1:$dport$path" -H "Authorization: Bearer $token"
run_wrk "nginx array, 1 conn" 1 "http://127.0.0.1:$nport/array.npy"
echo "wrk -t2 -c64 -d$duration --timeout 60s --latency"
run_wrk "dualkd /healthz" 64 "http://127.0.0.1:$dport/healthz"
run_wrk "dualkd catalogue" 64 "http://127.0.0.1:$dport/v1/targets?profile=fine" \
  -H "Authorization: Bearer $token"
echo "serve_vs_nginx: done, $(uptime | sed 's/.*load/load/')"
