#!/bin/sh
# pull_bench.sh: the example store of docs/api.md (3 synthetic knees at clinical-3.3mm,
# a tiny teacher), served by `dualkd serve` on a free loopback port, pulled by
# bench_pull (cold and warm). usage: bench/pull_bench.sh BUILD_DIR [repeats]
set -eu
B=$(cd "$1" && pwd); R=${2:-3}
W=$(mktemp -d /tmp/pull_bench-XXXXXX); trap 'kill $PID 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
cat > tiny.json <<'J'
{"network": {"levels": 2, "base_width": 4, "pool": [[2, 2, 2]], "kernel": [[3, 3, 3], [3, 3, 3]]},
 "patch": [16, 32, 32], "batch": 2, "steps": 4, "steps_per_epoch": 2, "checkpoint_every": 0}
J
"$B/dualkd" data synth --n 3 --quiet --out repo.h5
"$B/dualkd" teacher train --data repo.h5 --out teacher.h5 --config tiny.json --threads 1 2>/dev/null
"$B/dualkd" teacher precompute --teacher teacher.h5 --data repo.h5 --profile clinical-3.3mm \
    --out stores --passes 2 --threads 1 2>/dev/null
T=$("$B/dualkd" token add --site bench --scope targets --tokens tokens.json 2>/dev/null)
"$B/dualkd" serve --teacher teacher.h5 --store stores --tokens tokens.json \
    --listen 127.0.0.1:0 --rate 0 2> serve.log & PID=$!
until grep -q listening serve.log; do sleep 0.2; done
URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' serve.log)
until curl -sf "$URL/readyz" >/dev/null; do sleep 0.2; done
echo "uptime: $(uptime)"
"$B/bench_pull" "$URL" "$T" clinical-3.3mm "$R"
