"""The documentation site: it builds offline without a single warning, every internal link and asset resolves, and
in headless Chromium the home page, a tutorial and the search page render (title, figures loaded, no missing
assets). Screenshots go to `_docs_screenshots/` (kept by CI as artefacts).

The build runs once per test session (shared by pytest-xdist workers through a lock) into `_docs/html`, the folder
`make docs` writes. Chromium is Debian's `chromium`: when it is missing the browser tests install it with apt-get
where they can (root), and are skipped with the reason otherwise."""
import base64
import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import urlopen

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / '_docs'
HTML = OUT / 'html'
SHOTS = ROOT / '_docs_screenshots'
TUTORIAL = 'generated/nbs/tutorials/01_score_photos.html'


# --- the build ---------------------------------------------------------------------------------------------------

def build_docs() -> subprocess.CompletedProcess:
    "A full build (every page re-read, so every warning shows) like `make docs`; executed tutorials come from the cache."
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-E', '-W', '--keep-going', '-q', '-d', str(OUT / 'doctrees'),
           str(ROOT / 'docs'), str(HTML)]
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}  # the kernels must show figures inline
    env['OMP_NUM_THREADS'] = '1'
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope='session')
def site():
    "Build once per test run (xdist workers share the result through a lock and a marker file); fail on warnings."
    OUT.mkdir(exist_ok=True)
    run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID') or f'local-{os.getpid()}'
    marker = OUT / 'test-build.json'
    with FileLock(str(OUT / 'test-build.lock')):
        prev = json.loads(marker.read_text()) if marker.is_file() else {}
        if prev.get('run') != run_id:
            t0 = time.time()
            res = build_docs()
            prev = dict(run=run_id, rc=res.returncode, seconds=round(time.time() - t0, 1),
                        log=(res.stdout + res.stderr)[-20000:])
            marker.write_text(json.dumps(prev))
    return prev


def test_docs_build_without_warnings(site):
    # Sphinx's own warnings ("file:line: WARNING: ..."); not the kernels' "[IPKernelApp] WARNING | ..." chatter
    warnings = [l for l in site['log'].splitlines() if re.search(r'(^|: )(WARNING|ERROR|CRITICAL): ', l)]
    assert site['rc'] == 0 and not warnings, f"docs build failed (rc {site['rc']}):\n" + site['log'][-6000:]
    for page in ('index.html', TUTORIAL, 'generated/report/index.html', 'differences.html', 'running_at_scale.html',
                 'generated/api.html', 'generated/api/eat.score.html', 'search.html', 'searchindex.js'):
        assert (HTML / page).is_file(), f'{page} missing from the built site'
    print(f"docs built in {site['seconds']} s")


class _Refs(HTMLParser):
    "Every href/src of a page."
    def __init__(self):
        super().__init__(); self.refs = []
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if v and ((tag in ('a', 'link') and k == 'href') or (tag in ('img', 'script', 'source') and k == 'src')):
                self.refs.append((tag, v))


def test_internal_links_and_assets_resolve_offline(site):
    assert site['rc'] == 0, 'the build failed: see test_docs_build_without_warnings'
    pages = sorted(p for p in HTML.rglob('*.html') if '_static' not in p.relative_to(HTML).parts)  # not theme macros
    broken, external_assets = [], []
    assert len(pages) > 30
    for page in pages:
        p = _Refs(); p.feed(page.read_text(encoding='utf-8'))
        for tag, ref in p.refs:
            u = urlsplit(ref)
            if u.scheme or ref.startswith('//'):
                if tag != 'a': external_assets.append(f'{page.relative_to(HTML)}: {ref}')
                continue
            if not u.path: continue  # a fragment of the same page
            target = (page.parent / unquote(u.path)).resolve()
            if target.is_dir(): target = target / 'index.html'
            if not target.exists(): broken.append(f'{page.relative_to(HTML)}: {ref}')
    assert not broken, 'broken internal links:\n' + '\n'.join(broken[:40])
    assert not external_assets, 'pages load assets from the network (the site must work offline):\n' + '\n'.join(external_assets[:20])


# --- the browser -------------------------------------------------------------------------------------------------

def _chromium() -> str:
    "Debian's chromium, installed with apt-get when missing and possible; otherwise the tests are skipped, loudly."
    exe = shutil.which('chromium')
    if exe: return exe
    if os.geteuid() == 0 and shutil.which('apt-get') and not os.environ.get('EAT_NO_APT'):
        res = subprocess.run(['apt-get', 'install', '-y', '-q', 'chromium'], capture_output=True, text=True,
                             env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}, timeout=900)
        exe = shutil.which('chromium')
        if exe: return exe
        reason = f'apt-get install chromium failed: {(res.stdout + res.stderr)[-500:]}'
    else: reason = 'not root or no apt-get (or EAT_NO_APT set)'
    pytest.skip(f'SKIPPED browser checks: Debian chromium is not installed and could not be installed ({reason}). '
                'Install it with `apt-get install -y chromium`.')


class _Quiet(http.server.SimpleHTTPRequestHandler):
    log = None  # list of (status, path), set per server
    def log_message(self, *args): pass
    def log_request(self, code='-', size='-'):
        self.log.append((int(code) if str(code).isdigit() else code, self.path))


@pytest.fixture(scope='module')
def server(site):
    assert site['rc'] == 0, 'the build failed: see test_docs_build_without_warnings'
    log = []
    handler = type('Handler', (_Quiet,), {'log': log})
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(handler, directory=str(HTML)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', log
    httpd.shutdown(); httpd.server_close()


class _Browser:
    "Just enough of the DevTools protocol: navigate, evaluate, screenshot, and record failed requests."
    def __init__(self, ws_url: str):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.n, self.events = 0, []
        for m in ('Page.enable', 'Network.enable', 'Runtime.enable'): self.call(m)
        self.call('Emulation.setDeviceMetricsOverride', width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps(dict(id=self.n, method=method, params=params)))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.n:
                if 'error' in msg: raise RuntimeError(f'{method}: {msg["error"]}')
                return msg.get('result', {})
            self.events.append(msg)

    def wait_event(self, name: str, timeout: float = 60):
        end = time.time() + timeout
        while time.time() < end:
            if any(e.get('method') == name for e in self.events): return
            self.ws.settimeout(max(0.1, end - time.time()))
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f'no {name} within {timeout} s')

    def eval(self, js: str):
        r = self.call('Runtime.evaluate', expression=js, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f'JS error in {js!r}: {r["exceptionDetails"]}')
        return r['result'].get('value')

    def open(self, url: str):
        self.events = []
        self.call('Page.navigate', url=url)
        self.wait_event('Page.loadEventFired')

    def failures(self) -> list[str]:
        "Requests of the current page that failed or answered >= 400."
        bad = [f"{e['params'].get('errorText')}: {e['params'].get('requestId')}" for e in self.events
               if e.get('method') == 'Network.loadingFailed' and not e['params'].get('canceled')]
        bad += [f"{e['params']['response']['status']} {e['params']['response']['url']}" for e in self.events
                if e.get('method') == 'Network.responseReceived' and e['params']['response']['status'] >= 400
                and not e['params']['response']['url'].endswith('/favicon.ico')]
        return bad

    def screenshot(self, path: Path):
        h = min(int(self.eval('document.documentElement.scrollHeight')), 8000)
        r = self.call('Page.captureScreenshot', format='png', captureBeyondViewport=True,
                      clip=dict(x=0, y=0, width=1280, height=h, scale=1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r['data']))
        return path


@pytest.fixture(scope='module')
def browser():
    exe = _chromium()
    profile = tempfile.mkdtemp(prefix='eat-chromium-')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    proc = subprocess.Popen([exe, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                             '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
                             '--disable-dev-shm-usage', f'--user-data-dir={profile}', f'--remote-debugging-port={port}',
                             'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ws, end = None, time.time() + 60
        while ws is None:
            if proc.poll() is not None: raise RuntimeError(f'chromium exited: {proc.stderr.read().decode()[-2000:]}')
            if time.time() > end: raise TimeoutError('chromium did not open its DevTools port in 60 s')
            try:
                pages = json.load(urlopen(f'http://127.0.0.1:{port}/json/list', timeout=2))
                ws = next(p['webSocketDebuggerUrl'] for p in pages if p.get('type') == 'page')
            except (OSError, StopIteration, ValueError): time.sleep(0.3)
        b = _Browser(ws)
        yield b
        b.ws.close()
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


# all images eager, then wait until each has finished loading or failed
IMAGES_DONE = """new Promise(done => {
  const imgs = Array.from(document.images); imgs.forEach(i => { i.loading = 'eager'; });
  const t0 = Date.now();
  (function poll() {
    if (imgs.every(i => i.complete) || Date.now() - t0 > 20000)
      done(imgs.map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})));
    else setTimeout(poll, 100);
  })();
})"""


def _check_page(browser, server, path: str, shot: str, title: str, min_images: int) -> dict:
    base, log = server
    n_log = len(log)
    browser.open(f'{base}/{path}')
    images = browser.eval(IMAGES_DONE)
    info = browser.eval("""({title: document.title, h1: (document.querySelector('h1') || {}).textContent || '',
                             sheets: document.styleSheets.length, text: document.body.innerText.length})""")
    out = browser.screenshot(SHOTS / shot)
    # /favicon.ico is asked for by the browser itself, not by the page
    missing = [f'{s} {p}' for s, p in log[n_log:] if isinstance(s, int) and s >= 400 and p != '/favicon.ico']
    assert title in info['title'] and info['h1'].strip(), f'{path}: no title or heading: {info}'
    assert info['sheets'] >= 3 and info['text'] > 500, f'{path}: page did not render (styles/text missing): {info}'
    assert len(images) >= min_images, f'{path}: expected >= {min_images} images, found {images}'
    assert all(i['ok'] for i in images), f'{path}: images not loaded: {[i for i in images if not i["ok"]]}'
    assert not missing and not browser.failures(), f'{path}: missing assets: {missing} {browser.failures()}'
    assert out.stat().st_size > 20_000, f'{out}: screenshot looks empty'
    return info


def test_home_page_renders_in_chromium(browser, server):
    _check_page(browser, server, 'index.html', 'home.png', 'eat', min_images=1)
    src = browser.eval("Array.from(document.images).map(i => i.src).join(' ')")
    assert 'trained_cpu_attention.png' in src, "the trained models' attention figure is not on the home page"


def test_tutorial_page_renders_with_outputs_in_chromium(browser, server):
    _check_page(browser, server, TUTORIAL, 'tutorial_score_photos.png', 'Score your own photos', min_images=2)
    outputs = browser.eval("document.querySelectorAll('.cell_output').length")
    assert outputs >= 5, f'the tutorial shows {outputs} cell outputs: was it executed while building?'


def test_search_works_without_a_server_side(browser, server):
    base, _ = server
    browser.open(f'{base}/search.html?q=interest+points')
    n = browser.eval("""new Promise(done => { const t0 = Date.now(); (function poll() {
        const n = document.querySelectorAll('#search-results li, ul.search li').length;
        if (n > 0 || Date.now() - t0 > 20000) done(n); else setTimeout(poll, 200); })(); })""")
    browser.screenshot(SHOTS / 'search.png')
    assert n > 0, 'the built-in search found nothing for "interest points"'


# --- the preparation step, on made-up inputs ---------------------------------------------------------------------

@pytest.fixture
def eat_docs(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / 'docs' / '_ext'))
    import eat_docs as m
    monkeypatch.setattr(m, 'ROOT', tmp_path); monkeypatch.setattr(m, 'GEN', tmp_path / 'generated')
    return m


def test_report_page_prefers_cpu_and_says_when_it_shows_smoke(eat_docs, tmp_path):
    res = tmp_path / 'experiments' / 'results'
    assert eat_docs.copy_report() is None
    assert 'No experiments report exists' in (tmp_path / 'generated' / 'report' / 'index.md').read_text()
    (res / 'smoke').mkdir(parents=True)
    (res / 'smoke' / 'REPORT.md').write_text('# EAT reproduction: smoke scale\n\n![fig](fig_a.png)\n')
    (res / 'smoke' / 'fig_a.png').write_bytes(b'png'); (res / 'smoke' / 'table1_main.csv').write_text('a\n1\n')
    assert eat_docs.copy_report() == 'smoke'
    page = (tmp_path / 'generated' / 'report' / 'index.md').read_text()
    assert page.startswith('# EAT reproduction: smoke scale') and 'cpu-scale results are not committed' in page
    assert (tmp_path / 'generated' / 'report' / 'fig_a.png').is_file() and 'table1_main.csv' in page
    (res / 'cpu').mkdir()
    (res / 'cpu' / 'REPORT.md').write_text('# EAT reproduction: cpu scale\n')
    assert eat_docs.copy_report() == 'cpu'
    page = (tmp_path / 'generated' / 'report' / 'index.md').read_text()
    assert 'These are the **cpu-scale** results' in page and not (tmp_path / 'generated' / 'report' / 'fig_a.png').exists()


def test_nbdev_directives_become_myst_nb_tags(eat_docs):
    code = lambda src: dict(cell_type='code', source=src, metadata={}, outputs=[], execution_count=None)
    nb = dict(cells=[code('#| hide\nimport x'), code('#| export\ndef f(): pass'), code('#| eval: false\nbig()'),
                     code('#| slow\nslow()'), code('nbdev_export()'), dict(cell_type='markdown', source='# T', metadata={})],
              metadata={}, nbformat=4, nbformat_minor=5)
    out = eat_docs.nbdev_to_myst(nb, {'slow'})['cells']
    assert [c['source'] for c in out] == ['def f(): pass', 'big()', 'slow()', '# T']
    assert [c['metadata'].get('tags') for c in out[:3]] == [None, ['skip-execution'], ['skip-execution']]
