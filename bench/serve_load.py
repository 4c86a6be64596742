# serve_load.py: aggregate download throughput of `dualkd serve` (docs/api.md, "Measured"):
# CLIENTS threads each fetch PER_CLIENT response arrays of the example store.
# usage: serve_load.py PORT TOKEN CLIENTS PER_CLIENT f2|f4
import sys, time, threading, requests
port, token, clients, per = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
url = 'http://127.0.0.1:%d/v1/targets/%%s/response' % port
H = {'Authorization': 'Bearer ' + token}
ids = ['knee-0000', 'knee-0001', 'knee-0002']
total = [0]; lock = threading.Lock()
def run(k):
    with requests.Session() as s:
        for i in range(per):
            r = s.get(url % ids[(i + k) % 3], params={'profile': 'clinical-3.3mm', 'dtype': sys.argv[5]}, headers=H)
            assert r.status_code == 200
            with lock: total[0] += len(r.content)
t0 = time.time()
ts = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.time() - t0
print('clients %d requests %d bytes %d seconds %.2f MB/s %.0f' % (clients, clients * per, total[0], dt, total[0] / dt / 1e6))
