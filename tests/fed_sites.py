"""fed_sites.py: the sites of tests/test_server_federation.c, as a notebook would
write them: requests + numpy (+ h5py to read the global student). They join a
federation on a real `dualkd serve`, download the global student, submit
hand-made deltas as np.savez bodies, and check the coordinator's global against
a FedAvg computed here by hand.

usage: fed_sites.py full|deadline BASE_URL ADMIN S1 S2 S3 OUTSIDER
       fed_sites.py crash BINARY TEACHER STORES TOKENS STUDENT WORKDIR ADMIN S1 S2 S3
"""
import hashlib, io, os, signal, subprocess, sys, threading, time, zipfile
import h5py, numpy as np, requests

SITES = ['site-1', 'site-2', 'site-3']
LABELLED = {'site-1': 2, 'site-2': 3, 'site-3': 5}


def H(token, **extra):
    return dict({'Authorization': 'Bearer ' + token}, **extra)


def params_of(blob):
    with h5py.File(io.BytesIO(blob), 'r') as f:
        return {k: f['params'][k][()] for k in f['params']}


def delta(base, seed, dtype=np.float32, scale=1e-2):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-scale, scale, v.shape).astype(dtype) for k, v in sorted(base.items())}


def npz(arrays, compressed=False):
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


def npz_bzip2(arrays):
    """A zip of .npy entries with a method the server does not take (12, bzip2)."""
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', zipfile.ZIP_BZIP2) as z:
        for k, v in arrays.items():
            a = io.BytesIO()
            np.lib.format.write_array(a, v)
            z.writestr(k + '.npy', a.getvalue())
    return b.getvalue()


def fedavg(base, updates):
    """next = base + sum n_i d_i / sum n_i, in float64, rounded once; sites in name order."""
    w = sum(n for _, n, _ in updates)
    out = {}
    for k, v in base.items():
        acc = np.zeros(v.shape, np.float64)
        for _, n, d in sorted(updates, key=lambda u: u[0]):
            acc += n * d[k].astype(np.float64)
        out[k] = (v.astype(np.float64) + acc / w).astype(np.float32)
    return out


def assert_model(got, want, what):
    assert sorted(got) == sorted(want), (what, sorted(got), sorted(want))
    worst = max(float(np.abs(got[k].astype(np.float64) - want[k]).max()) for k in got)
    assert worst <= 1e-7, '%s: the global differs from the hand-computed FedAvg by %g' % (what, worst)
    return worst


class Client:
    def __init__(self, base, fed, tokens):
        self.base, self.fed, self.tokens = base, fed, tokens
        self.up, self.down = {}, {}  # (site, round) -> bytes the coordinator recorded

    def url(self, tail=''):
        return '%s/v1/federation/%s%s' % (self.base, self.fed, tail)

    def create(self, admin, rounds, quorum, deadline):
        r = requests.post(self.base + '/v1/federation', headers=H(admin),
                          json={'name': self.fed, 'rounds': rounds, 'quorum': quorum,
                                'deadline_seconds': deadline})
        assert r.status_code == 201, r.text
        assert r.headers['Location'] == '/v1/federation/' + self.fed
        return r.json()

    def join(self, site):
        r = requests.post(self.url('/join'), headers=H(self.tokens[site]))
        assert r.status_code == 200 and r.json()['site'] == site, r.text

    def global_model(self, site):
        r = requests.get(self.url('/global'), headers=H(self.tokens[site]))
        assert r.status_code == 200, r.text
        assert r.headers['Content-Type'] == 'application/x-hdf5'
        assert r.headers['ETag'] == '"%s"' % hashlib.sha256(r.content).hexdigest()
        rnd = int(r.headers['Dualkd-Round'])
        key = (site, rnd)
        self.down[key] = self.down.get(key, 0) + len(r.content)
        again = requests.get(self.url('/global'), headers=H(self.tokens[site],
                             **{'If-None-Match': r.headers['ETag']}))
        assert again.status_code == 304 and not again.content, again.status_code
        return rnd, params_of(r.content), r.headers['ETag']

    def submit(self, site, rnd, body, labelled=None, val_dice=None, expect=202, detail=None):
        q = {} if labelled is None else {'labelled': labelled}
        if val_dice is not None:
            q['val_dice'] = val_dice
        r = requests.post(self.url('/rounds/%d/updates' % rnd), params=q, data=body,
                          headers=H(self.tokens[site], **{'Content-Type': 'application/octet-stream'}))
        assert r.status_code == expect, (site, rnd, expect, r.status_code, r.text)
        if expect != 202:
            assert r.headers['Content-Type'] == 'application/problem+json', r.headers
            assert detail is None or detail in r.json()['detail'], (detail, r.json())
        if r.status_code in (202, 409, 422):  # these reached the coordinator and are recorded
            self.up[(site, rnd)] = self.up.get((site, rnd), 0) + len(body)
        return r

    def status(self, token):
        r = requests.get(self.url(), headers=H(token))
        assert r.status_code == 200, r.text
        return r.json()


def full(base, admin, tokens, outsider):
    c = Client(base, 'knee', tokens)
    c.create(admin, rounds=2, quorum=3, deadline=600)
    r = requests.post(base + '/v1/federation', headers=H(admin),
                      json={'name': 'knee', 'rounds': 2, 'quorum': 3, 'deadline_seconds': 600})
    assert r.status_code == 409 and 'already exists' in r.json()['detail'], r.text
    r = requests.post(base + '/v1/federation', headers=H(tokens['site-1']),
                      json={'name': 'x', 'rounds': 1, 'quorum': 1, 'deadline_seconds': 1})
    assert r.status_code == 403 and 'federation-admin' in r.json()['detail'], r.text
    r = requests.get(c.url(), headers=H(outsider))
    assert r.status_code == 403, r.text
    r = requests.get(base + '/v1/federation', headers=H(admin))
    assert r.status_code == 405 and r.headers['Allow'] == 'POST', r.text
    for s in SITES:
        c.join(s)
    c.join('site-1')  # idempotent
    rnd, base0, etag0 = c.global_model('site-1')
    assert rnd == 0
    for s in SITES[1:]:
        assert c.global_model(s)[2] == etag0
    # refusals: none of them reaches the global model
    bad = delta(base0, 99)
    first = sorted(bad)[0]
    bad[first] = bad[first].copy()
    bad[first].flat[3] = np.nan
    c.submit('site-3', 0, npz(bad), 5, expect=422, detail='NaN')
    inf = delta(base0, 98)
    inf[first].flat[0] = np.inf
    c.submit('site-3', 0, npz(inf), 5, expect=422)
    c.submit('site-3', 0, npz_bzip2(delta(base0, 97)), 5, expect=400, detail='zip method 12')
    c.submit('site-3', 0, npz(dict(delta(base0, 96), **{'adapter.bottleneck.weight':
             np.zeros((4, 4, 1, 1, 1), np.float32)})), 5, expect=422, detail='adapter')
    shaped = delta(base0, 95)
    shaped[first] = shaped[first].reshape(-1)
    c.submit('site-3', 0, npz(shaped), 5, expect=422, detail='has shape')
    huge = {k: v * 1e6 for k, v in delta(base0, 94).items()}
    c.submit('site-3', 0, npz(huge), 5, expect=422, detail='norm')
    c.submit('site-3', 0, npz(delta(base0, 93)), None, expect=400, detail="'labelled'")
    c.submit('site-3', 0, npz(delta(base0, 93)), 0, expect=422, detail='labelled = 0')
    c.submit('site-3', 0, b'not a zip', 5, expect=400, detail='not a usable update')
    c.submit('site-3', 1, npz(delta(base0, 93)), 5, expect=409, detail='has not opened')
    r = requests.post(c.url('/rounds/0/updates'), params={'labelled': 1}, data=npz(delta(base0, 1)),
                      headers=H(admin))
    assert r.status_code == 403 and 'has not joined' in r.json()['detail'], r.text
    # a body above --max-body is taken only from a token with the federation scope
    big = b'\0' * (2 << 20)
    try:
        status = requests.post(c.url('/rounds/0/updates'), params={'labelled': 1}, data=big,
                               headers=H(outsider)).status_code
        big_outcome = 'answered %d' % status
    except requests.ConnectionError:  # the server answered 413 and closed while we sent
        status, big_outcome = 413, 'connection closed by the server'
    assert status == 413, status
    c.submit('site-3', 0, big, 5, expect=400, detail='not a usable update')
    # the three real updates; a duplicate in between
    d = {s: delta(base0, 10 + i, np.float16 if s == 'site-2' else np.float32)
         for i, s in enumerate(SITES)}
    assert c.submit('site-1', 0, npz(d['site-1']), 2).json()['round_closed'] is False
    c.submit('site-2', 0, npz(d['site-2'], compressed=True), 3)  # np.savez_compressed counts alike
    c.submit('site-1', 0, npz(d['site-1']), 2, expect=409, detail='counts once')
    r = c.submit('site-3', 0, npz(d['site-3']), 5, val_dice=0.5)
    assert r.json() == {'federation': 'knee', 'site': 'site-3', 'round': 0, 'accepted': True,
                        'round_closed': True}, r.json()
    c.submit('site-2', 0, npz(d['site-2']), 3, expect=409, detail='is closed')  # late
    want1 = fedavg(base0, [(s, LABELLED[s], d[s]) for s in SITES])
    rnd, base1, etag1 = c.global_model('site-1')
    assert rnd == 1 and etag1 != etag0
    worst = assert_model(base1, want1, 'round 0')
    # round 1: every site reports a Dice for the global it received
    d1 = {s: delta(base1, 20 + i) for i, s in enumerate(SITES)}
    for i, s in enumerate(SITES):
        if s != 'site-1':
            c.global_model(s)
        c.submit(s, 1, npz(d1[s]), LABELLED[s], val_dice=0.6 + 0.1 * i)
    rnd, final, _ = c.global_model('site-2')
    assert rnd == 1
    worst = max(worst, assert_model(final, fedavg(base1, [(s, LABELLED[s], d1[s]) for s in SITES]),
                                    'round 1'))
    c.submit('site-1', 1, npz(d1['site-1']), 2, expect=409, detail='finished')
    st = c.status(tokens['site-2'])
    assert st['state'] == 'finished' and st['members'] == SITES, st
    h = st['rounds_history']
    assert [r['state'] for r in h] == ['closed', 'closed']
    assert sorted(u['site'] for u in h[0]['reported']) == SITES and h[0]['missing'] == []
    reasons = ' | '.join(u['reason'] for u in h[0]['refused'])
    for word in ('NaN', 'infinit', 'adapter', 'shape', 'norm', 'counts once', 'closed'):
        assert word in reasons, (word, reasons)
    assert abs(h[0]['mean_val_dice'] - 0.5) < 1e-9 and abs(h[1]['mean_val_dice'] - 0.7) < 1e-9
    for rr in h:
        for t in rr['traffic']:
            key = (t['site'], rr['round'])
            assert t['bytes_up'] == c.up.get(key, 0), (key, t, c.up.get(key))
            assert t['bytes_down'] == c.down.get(key, 0), (key, t, c.down.get(key))
    assert requests.get(c.url('/status'), headers=H(admin)).json() == c.status(admin)
    metrics = requests.get(base + '/metrics').text
    for s in SITES:
        up = sum(v for (site, _), v in c.up.items() if site == s)
        down = sum(v for (site, _), v in c.down.items() if site == s)
        assert 'dualkd_federation_bytes_total{site="%s",direction="up"} %d\n' % (s, up) in metrics
        assert 'dualkd_federation_bytes_total{site="%s",direction="down"} %d\n' % (s, down) in metrics
    print('full ok: worst |global - hand FedAvg| = %g; 2 MiB from a stranger: %s' % (worst, big_outcome))


def deadline(base, admin, tokens):
    """quorum 3, deadline 2 s, site-3 never reports: the ticker closes the round."""
    c = Client(base, 'slow', tokens)
    c.create(admin, rounds=1, quorum=3, deadline=2)
    for s in SITES:
        c.join(s)
    _, base0, _ = c.global_model('site-1')
    d = {s: delta(base0, 30 + i) for i, s in enumerate(SITES[:2])}
    for s in SITES[:2]:
        c.submit(s, 0, npz(d[s]), LABELLED[s])
    time.sleep(4)  # no request meanwhile: only the ticker can close it
    st = c.status(admin)
    r0 = st['rounds_history'][0]
    assert st['state'] == 'finished' and r0['missing'] == ['site-3'], st
    assert r0['closed_at'] - r0['opened_at'] <= 3, ('closed by a request, not the ticker', r0)
    _, final, _ = c.global_model('site-3')
    assert_model(final, fedavg(base0, [(s, LABELLED[s], d[s]) for s in SITES[:2]]), 'deadline')
    c.submit('site-3', 0, npz(d['site-1']), 1, expect=409)
    print('deadline ok: closed %d s after it opened, missing %s' %
          (r0['closed_at'] - r0['opened_at'], r0['missing']))


def serve(args, fed_dir):
    binary, teacher, stores, tokens, student = args
    p = subprocess.Popen([binary, 'serve', '--teacher', teacher, '--store', stores, '--tokens',
                          tokens, '--listen', '127.0.0.1:0', '--rate', '0', '--federation',
                          fed_dir, '--fed-student', student], stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    assert 'listening on http://127.0.0.1:' in line, line
    base = 'http://127.0.0.1:%d' % int(line.split('127.0.0.1:')[1].split()[0])
    for _ in range(1000):
        if requests.get(base + '/readyz').status_code == 200:
            return p, base
        time.sleep(0.02)
    raise SystemExit('never ready')


def crash(args, workdir, admin, tokens):
    """The same federation twice: uninterrupted, and with SIGKILLs mid-round."""
    finals, third = [], None
    for run in ('straight', 'killed'):
        p, base = serve(args, os.path.join(workdir, run))
        c = Client(base, 'knee', tokens)
        c.create(admin, rounds=2, quorum=3, deadline=600)
        for s in SITES:
            c.join(s)
        for rnd in range(2):
            _, model, _ = c.global_model('site-1')
            d = {s: delta(model, 100 * rnd + i) for i, s in enumerate(SITES)}
            for i, s in enumerate(SITES):
                if run == 'killed' and rnd == 1 and i == 2:
                    # killed after two acknowledged updates, then again with the third in flight
                    p.kill(); p.wait()
                    p, c.base = serve(args, os.path.join(workdir, run))
                    body = npz(d[s])
                    t = threading.Thread(target=lambda: _swallow(c, s, body))
                    t.start(); time.sleep(0.01); p.kill(); p.wait(); t.join()
                    p, c.base = serve(args, os.path.join(workdir, run))
                    for s2 in SITES:  # every site resends: acknowledged ones are duplicates
                        r = requests.post(c.url('/rounds/1/updates'), params={'labelled': LABELLED[s2]},
                                          data=npz(d[s2]), headers=H(tokens[s2]))
                        assert r.status_code == 202 or (r.status_code == 409 and (
                            'counts once' in r.json()['detail'] or 'finished' in r.json()['detail'])), \
                            (s2, r.text)
                        assert s2 == 'site-3' or r.status_code == 409, ('counted twice', s2, r.text)
                        third = r.status_code if s2 == 'site-3' else None
                    break
                c.submit(s, rnd, npz(d[s]), LABELLED[s])
        st = c.status(admin)
        assert st['state'] == 'finished', st
        for rr in st['rounds_history']:
            assert sorted(u['site'] for u in rr['reported']) == SITES, rr
        _, final, etag = c.global_model('site-2')
        finals.append((final, etag))
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    (a, ea), (b, eb) = finals
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), 'results differ'
    print('crash ok: final global identical to the uninterrupted run (ETags %s); the update in '
          'flight at the kill was %s' % ('equal' if ea == eb else 'differ',
                                         'lost, resent: 202' if third == 202 else 'kept: 409 on resend'))


def _swallow(c, site, body):
    try:
        requests.post(c.url('/rounds/1/updates'), params={'labelled': LABELLED[site]}, data=body,
                      headers=H(c.tokens[site]), timeout=30)
    except requests.RequestException:
        pass


if __name__ == '__main__':
    mode = sys.argv[1]
    if mode in ('full', 'deadline'):
        base, admin, s1, s2, s3, outsider = sys.argv[2:8]
        tokens = dict(zip(SITES, (s1, s2, s3)))
        full(base, admin, tokens, outsider) if mode == 'full' else deadline(base, admin, tokens)
    else:
        binary, teacher, stores, tokens_file, student, workdir, admin, s1, s2, s3 = sys.argv[2:12]
        crash((binary, teacher, stores, tokens_file, student), workdir, admin,
              dict(zip(SITES, (s1, s2, s3))))
