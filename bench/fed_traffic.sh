#!/bin/bash
# fed_traffic.sh WORKDIR: docs/student.md's federation example (3 synthetic sites, the
# teacher-default U-Net, 3 rounds of 10 local steps), run to measure the bytes per site
# and round (issue #14). Prints the status table, site c's log and every round line.
set -euo pipefail
B=$(cd "$(dirname "$0")/.." && pwd)/build/dualkd
W=${1:?usage: bench/fed_traffic.sh WORKDIR (a new directory)}; mkdir "$W" && cd "$W"
export OPENBLAS_NUM_THREADS=1
$B data synth --profile clinical-3.3mm --n 3 --seed 9 --prefix repo --quiet --out repo.h5
L=2; s=1
for h in a b c; do
  $B data synth --profile clinical-3.3mm --labelled $L --validation 1 --seed $((s+10)) --prefix hosp-$h --quiet --out hospital-$h.h5
  L=$((L+1)); s=$((s+1))
done
echo '{"steps": 1, "patch": [8, 64, 64], "batch": 1}' > t.json
$B teacher train --data repo.h5 --out initial.h5 --config t.json --threads 1 > teacher.log 2>&1
mkdir -p stores fed
$B token add --site operator --scope federation,federation-admin --tokens tokens.json > op.txt
for h in a b c; do $B token add --site hospital-$h --scope federation --tokens tokens.json > hospital-$h.token; done
$B serve --teacher initial.h5 --store stores --tokens tokens.json --listen 127.0.0.1:0 \
   --federation fed --fed-student initial.h5 > serve.log 2>&1 &
SERVE=$!
for i in $(seq 50); do grep -o 'http://127.0.0.1:[0-9]*' serve.log >/dev/null 2>&1 && break; sleep 0.2; done
URL=$(grep -o 'http://127.0.0.1:[0-9]*' serve.log | head -1)
echo "server $URL"
$B fed create --server $URL --token-file op.txt --name knee --rounds 3 --quorum 3 --deadline 600
echo '{"patch": [8, 64, 64], "batch": 2, "optimizer": {"lr": 0.003}}' > site.json
pids=""
for h in a b c; do
  $B student train --federate knee --server $URL --token $(cat hospital-$h.token) \
      --data hospital-$h.h5 --out hospital-$h-student.h5 --supervised-only --config site.json \
      --local-steps 10 --threads 1 > site-$h.log 2>&1 &
  pids="$pids $!"
done
rc=0; for p in $pids; do wait $p || rc=1; done
$B fed status --server $URL --token-file op.txt --name knee || true
kill $SERVE; wait $SERVE || true
cat site-c.log
grep -h '"kind":"round"' hospital-*-student.h5.runlog.jsonl
/usr/bin/python3 - <<'PY'
import glob, json
p = int(open('site-c.log').read().split(' parameters')[0].rsplit(' ', 1)[1])
for f in sorted(glob.glob('hospital-*-student.h5.runlog.jsonl')):
    for j in map(json.loads, open(f)):
        if j['kind'] == 'round':
            d, u = j['bytes_down'], j['bytes_up']
            print('%s round %d: %d B down + %d B up = %.4f of the original %d B (16 B x %d)'
                  % (j['site'], j['round'], d, u, (d + u) / (16 * p), 16 * p, p))
PY
exit $rc
