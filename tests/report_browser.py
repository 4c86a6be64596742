# report_browser.py: the demo's report folder as a user sees it: `dualkd report` renders
# a report of two small synthetic sites, headless Chromium (Debian's `chromium`)
# screenshots its index.html, and the screenshot's pixels must show the pictures: the
# label colours of the overlays and the line colours of the curves. The same page with
# its PNGs removed (broken images) is screenshot too and must show neither, so the check
# tells a loaded picture from a missing one.
#
#   report_browser.py [KEEP_DIR]   (KEEP_DIR: keep the files there for a look)
#
# Needs $DUALKD_BIN (set by ctest). Exits 77 (ctest: skipped) only when chromium is not
# installed; scripts/bootstrap installs it. Decodes PNGs with python3-pil (Debian).
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
WINDOW = (1400, 3000)
CHROMIUM_TIMEOUT = 120  # seconds; a hung browser fails the test instead of stalling ctest


def run(*args, cwd):
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit("failed (%d): %s\n%s%s" % (p.returncode, " ".join(args), p.stdout, p.stderr))
    return p.stdout


def make_site(bin_, work, name, profile, seed):
    """A site dataset and three prediction folders: the truth itself, the truth shifted
    along x, and nothing at all; their metrics from `dualkd eval --json`."""
    import nibabel
    import numpy as np
    run(bin_, "data", "synth", "--profile", profile, "--labelled", "1", "--validation", "1",
        "--seed", str(seed), "--quiet", "--out", "%s.h5" % name, cwd=work)
    truth_dir = "preds/truth/%s" % name
    os.makedirs(os.path.join(work, "preds", "truth"), exist_ok=True)
    run(bin_, "eval", "--pred", "%s.h5" % name, "--data", "%s.h5" % name, "--export", truth_dir, cwd=work)
    cells = {}
    for method in ("shifted", "empty"):
        out = os.path.join(work, "preds", method, name)
        os.makedirs(out)
        for f in os.listdir(os.path.join(work, truth_dir)):
            img = nibabel.load(os.path.join(work, truth_dir, f))
            data = np.asarray(img.dataobj)
            data = np.roll(data, 12, axis=0) if method == "shifted" else np.zeros_like(data)
            nibabel.save(nibabel.Nifti1Image(data.astype(np.uint8), img.affine), os.path.join(out, f))
    for method, folder in (("truth", truth_dir), ("shifted", "preds/shifted/" + name),
                           ("empty", "preds/empty/" + name)):
        report = json.loads(run(bin_, "eval", "--pred", folder, "--data", "%s.h5" % name, "--json", cwd=work))
        classes = {c: {"dice": s["dice"]["mean"], "hd95_mm": s["hd95"]["mean"] if s["hd95"]["n"] else None,
                       "assd_mm": s["assd"]["mean"] if s["assd"]["n"] else None}
                   for c, s in report["summary"].items()}
        mean = sum(v["dice"] for v in classes.values()) / len(classes)
        cells[method] = {"predictions": folder, "classes": classes, "mean_dice": mean}
    return report["classes"], cells


def write_results(bin_, work):
    sites, cells = [], {}
    for name, profile, seed in (("site-a", "clinical-3.3mm", 3), ("site-b", "clinical-4.5mm", 4)):
        classes, cells[name] = make_site(bin_, work, name, profile, seed)
        sites.append({"name": name, "profile": profile, "contrast": "pd-fs", "data": name + ".h5",
                      "labelled": 1, "validation": 1, "overlay": {"volume": None, "axis": "z", "slice": None}})
    curves = {"truth": [], "shifted": [0.3, 0.45, 0.5, 0.55], "empty": [0.1, 0.05, 0.0, 0.0]}
    methods = []
    for method, title in (("truth", "ground truth copy"), ("shifted", "shifted <by 12>"),
                          ("empty", "empty prediction")):
        per_site = {}
        for s in cells:
            cell = dict(cells[s][method])
            cell["curve"] = [{"round": i + 1, "dice": d} for i, d in enumerate(curves[method])]
            per_site[s] = cell
        methods.append({"name": method, "title": title, "seconds": 12.5, "rounds": len(curves[method]),
                        "local_steps": 10, "bytes_per_round": None if method == "truth" else {"down": 1200000, "up": 1100000},
                        "sites": per_site})
    results = {"dualkd": "test", "quick": True, "seconds": 42.0, "classes": classes, "sites": sites,
               "methods": methods, "original_bytes_per_round": {"down": 22600000, "up": 22600000},
               "verdict": "the truth beat the shifted copy at 2 of 2 sites & nobody was surprised"}
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def screenshot(page, shot, profile_dir):
    """Chromium's screenshot of page; the browser and all it started are gone afterwards."""
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-dev-shm-usage", "--disable-breakpad", "--user-data-dir=" + profile_dir,
            "--window-size=%d,%d" % WINDOW, "--screenshot=" + shot, "file://" + page]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        out = b"(timed out after %d s)" % CHROMIUM_TIMEOUT
    finally:
        kill_leftovers(p.pid, profile_dir)
    if not os.path.exists(shot):
        raise SystemExit("chromium wrote no screenshot (exit %s):\n%s" % (p.returncode, out.decode(errors="replace")))


def become_subreaper():
    """Chromium's helpers that outlive it are re-parented to us (not to a pid 1 that may
    never reap them), so kill_leftovers can reap them."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_leftovers(pgid, profile_dir):
    """Chromium's own process group, then any process still naming our profile directory
    (helpers that left the group), each by its id; then reap every exited child."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if profile_dir.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
    for _ in range(100):  # SIGKILLed processes exit at once; never wait forever
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.05)
        except ChildProcessError:
            break


def colourful(rgb):
    r, g, b = rgb[:3]
    return max(r, g, b) - min(r, g, b) > 40


def count_near(pixels, colours, tolerance):
    """How many pixels are within tolerance (per channel) of one of colours."""
    quantised = {(c[0] // 8, c[1] // 8, c[2] // 8) for c in colours}
    reach = (tolerance + 7) // 8
    near = set()
    for q in quantised:
        for dr in range(-reach, reach + 1):
            for dg in range(-reach, reach + 1):
                for db in range(-reach, reach + 1):
                    near.add((q[0] + dr, q[1] + dg, q[2] + db))
    return sum(n for c, n in pixels.items() if colourful(c) and (c[0] // 8, c[1] // 8, c[2] // 8) in near)


def histogram(path):
    from PIL import Image
    img = Image.open(path).convert("RGB")
    return img.size, {c: n for n, c in img.getcolors(maxcolors=img.size[0] * img.size[1])}


def check(report_dir, work):
    html = open(os.path.join(report_dir, "index.html"), encoding="utf-8").read()
    assert "&amp; nobody was surprised" in html and "shifted &lt;by 12&gt;" in html, "escaped text"
    return pictures_show(report_dir, work, ("site-a", "site-b"))


def pictures_show(report_dir, work, sites):
    """Whether Chromium shows index.html's overlays (one per site) and curves: their
    colours in a screenshot, and not in one of the same page without its PNGs."""
    page = os.path.join(report_dir, "index.html")
    html = open(page, encoding="utf-8").read()
    assert "<script" not in html.lower(), "index.html must not need JavaScript"
    overlay_colours, expected = set(), 0
    for name in sites:
        (w, h), pixels = histogram(os.path.join(report_dir, "overlay-%s.png" % name))
        label = {c: n for c, n in pixels.items() if colourful(c)}
        overlay_colours |= set(label)
        shrink = min(1.0, 1300.0 / w)  # the page may scale a wide picture down
        expected += sum(label.values()) * shrink * shrink
    _, curve_pixels = histogram(os.path.join(report_dir, "curves.png"))
    curve_colours = {c for c, n in curve_pixels.items() if colourful(c) and n > 50}

    shot = os.path.join(work, "shot.png")
    screenshot(page, shot, os.path.join(work, "chromium-profile"))
    size, pixels = histogram(shot)
    seen_labels = count_near(pixels, overlay_colours, 6)
    seen_curves = count_near(pixels, curve_colours, 6)
    print("screenshot %dx%d: %d label-coloured pixels (overlays hold %.0f at page scale), %d curve-coloured"
          % (size[0], size[1], seen_labels, expected, seen_curves))

    broken = os.path.join(work, "broken")
    shutil.copytree(report_dir, broken)
    for f in os.listdir(broken):
        if f.endswith(".png"):
            os.unlink(os.path.join(broken, f))
    shot_broken = os.path.join(work, "shot-broken.png")
    screenshot(os.path.join(broken, "index.html"), shot_broken, os.path.join(work, "chromium-profile-2"))
    _, pixels_broken = histogram(shot_broken)
    broken_labels = count_near(pixels_broken, overlay_colours, 6)
    broken_curves = count_near(pixels_broken, curve_colours, 6)
    print("without the PNGs: %d label-coloured, %d curve-coloured pixels" % (broken_labels, broken_curves))

    ok = seen_labels >= 0.3 * expected and seen_curves >= 500
    ok = ok and broken_labels < 0.01 * expected and broken_curves < 50
    return ok


def main():
    if shutil.which("chromium") is None:
        print("SKIP: Debian's chromium is not installed (scripts/bootstrap installs it)")
        return SKIP
    bin_ = os.environ.get("DUALKD_BIN", "build/dualkd")
    bin_ = os.path.abspath(bin_)
    keep = sys.argv[1] if len(sys.argv) > 1 else None
    work = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="report_browser-")
    os.makedirs(work, exist_ok=True)
    become_subreaper()
    try:
        write_results(bin_, work)
        report_dir = os.path.join(work, "report")
        run(bin_, "report", "--results", "results.json", "--out", "report", cwd=work)
        if not check(report_dir, work):
            print("FAIL: the screenshot does not show the report's pictures (files in %s)" % work)
            keep = True
            return 1
        print("ok: the browser shows the overlays and the curves")
        return 0
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
