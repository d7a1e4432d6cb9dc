"""The calculator page in a real browser: a real ``ess serve`` on 127.0.0.1 (with
access tokens) driven by Debian's headless ``chromium`` and ``chromedriver``
through selenium.

The page asks for the token, computes the curve (a table job) and the threshold,
and shows the threshold that ``ess threshold`` computes for the same parameters;
its rows and CSV are those of the Python API and ``ess table``; a ``422`` is shown
beside the field it names; ``429`` and ``503`` are plain messages with the retry
time; the heatmap is drawn; ``/``, ``/docs`` and ``/redoc`` load nothing from
another host. A screenshot of the page is saved.

Without chromium, chromedriver or selenium every test here is skipped, saying
which is missing (``.ci/run`` installs them with apt-get).
"""

import json
import shutil
from urllib.parse import urlparse

import pytest

import ess
from ess.cli import main

_missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    _missing.append("the selenium package (pip install 'ess[test]')")
if _missing:
    pytest.skip(f"no browser to drive: {', '.join(_missing)} not installed (Debian: apt-get "
                "install chromium chromium-driver)", allow_module_level=True)

from benchmarks.service_load import Server  # noqa: E402 (after the skip: imports httpx)

TOKEN = "lab-browser-test-token-0123456789"
#: Small, cheap settings: d = 1 at 5% precision.
MODEL = {"d": 1, "n_r": 50, "lam": 0.8, "rel_precision": 0.05, "seed": 3}
GRID = {"ns_from": 5, "ns_to": 500, "ns_points": 6}
#: The n_s grid the page builds from GRID: 0, then rounded geometric values.
NS = [0, 5, 13, 32, 79, 199, 500]
#: Generous bound (s) on a page waiting for computations on a shared 2-core machine.
WAIT = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    (tmp / "tokens.txt").write_text(f"browser {TOKEN}\n")
    with Server(tmp / "store", "--token-file", str(tmp / "tokens.txt"), "--log-level",
                "info") as srv:
        yield srv


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1200,1500"):
        opts.add_argument(a)          # --no-sandbox: CI runs as root
    opts.binary_location = shutil.which("chromium")
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    d.set_script_timeout(30)
    try:
        yield d
    finally:
        d.quit()


def _wait(driver, cond, timeout: float = 30):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond)


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def _type(driver, field: str, value) -> None:
    e = driver.find_element(By.ID, field)
    e.clear()
    e.send_keys(str(value))


def _fill(driver, model: dict, grid: dict = GRID) -> None:
    for k in ("d", "n_r", "rel_precision", "seed"):
        _type(driver, k, model[k])
    driver.find_element(By.CSS_SELECTOR, "input[name=bias][value=lam]").click()
    _type(driver, "bias_value", model["lam"])
    for k, v in grid.items():
        _type(driver, k, v)


def _signed_in(driver, server) -> None:
    """The page, with the token given once (kept in sessionStorage)."""
    _open(driver, server.url + "/")
    if driver.execute_script("return sessionStorage.getItem('ess-token')"):
        return
    _wait(driver, lambda d: d.find_element(By.ID, "token-box").is_displayed())
    assert "needs an access token" in driver.find_element(By.ID, "err-token").text
    _type(driver, "token", TOKEN)
    driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
    _wait(driver, lambda d: not d.find_element(By.ID, "token-box").is_displayed())


def _foreign(driver, base: str) -> list[str]:
    """Resources the page loaded from anywhere but ``base``'s host."""
    host = urlparse(base).netloc
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names + [driver.current_url]
            if urlparse(n).scheme not in ("data", "blob") and urlparse(n).netloc != host]


def test_the_curve_and_threshold_are_the_command_lines(server, driver, tmp_path, capsys):
    _signed_in(driver, server)
    _fill(driver, MODEL)
    driver.find_element(By.ID, "compute").click()
    star = _wait(driver, lambda d: d.find_element(By.ID, "n_s_star")
                 if d.find_element(By.ID, "result").is_displayed() else None, WAIT)
    _wait(driver, lambda d: d.find_element(By.ID, "status").text.startswith("Done"))
    # the threshold shown is ess threshold's, computed afresh without a store
    assert main(["threshold", "--d", "1", "--n-r", "50", "--lam", "0.8", "--rel-precision",
                 "0.05", "--seed", "3", "--no-store", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert star.get_attribute("data-value") == str(cli["n_s_star"])
    lo, hi = cli["n_s_star_ci"]
    assert f"n_s* = {cli['n_s_star']} (95% CI [{lo}, {hi}])" in star.text
    shown = driver.execute_script("return state.view.threshold")
    assert {k: shown[k] for k in cli if k != "seconds"} == {k: v for k, v in cli.items()
                                                             if k != "seconds"}
    # the curve's rows are the Python API's (ess table), and the CSV has ess table's columns
    rows = driver.execute_script("return state.view.table.rows")
    assert [r["n_s"] for r in rows] == NS
    want = ess.table(n_r=[50], n_s=NS, lam=[0.8], d=1, rel_precision=0.05, seed=3,
                     store=False)
    for got, ref in zip(rows, want):
        ref = ref.to_dict()
        assert {k: got[k] for k in ("n_e", "n_e_ci", "n_e_over_n_r", "verdict")} == {
            k: ref[k] for k in ("n_e", "n_e_ci", "n_e_over_n_r", "verdict")}
    csv = driver.execute_script("return toCsv(state.view.table.rows)").splitlines()
    assert csv[0].split(",") == list(want.to_frame().columns)
    assert len(csv) == 1 + len(NS)
    # the chart: a point per positive n_s, the n_e = n_r line, the threshold marked
    chart = driver.find_element(By.ID, "curve")
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.point")) == len(NS) - 1
    assert chart.find_elements(By.CSS_SELECTOR, "line.unity")
    if cli["n_s_star"]:
        assert f"n_s* = {cli['n_s_star']}" in chart.text
    assert len(driver.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == len(NS)
    # the link reproduces the view: opened, it computes the same (now from the store)
    link = driver.find_element(By.ID, "permalink").get_attribute("href")
    assert all(f"{k}={v}" in link for k, v in {**MODEL, **GRID}.items())
    _open(driver, link)
    _wait(driver, lambda d: d.find_element(By.ID, "status").text.startswith("Done"), WAIT)
    assert driver.find_element(By.ID, "n_s_star").get_attribute("data-value") == str(
        cli["n_s_star"])
    assert "from the store" in driver.find_element(By.ID, "status").text
    shot = tmp_path / "page.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"screenshot of the page: {shot}")
    assert _foreign(driver, server.url) == []
    assert TOKEN not in server.stderr()


def test_cancel_stops_the_table_job(server, driver):
    """A long table (d = 20 at 1%): the progress bar shows, Cancel ends the job on the
    server (cancelled, not just forgotten by the page) and says so."""
    _signed_in(driver, server)
    _fill(driver, {**MODEL, "d": 20, "rel_precision": 0.01, "seed": 99})
    driver.find_element(By.ID, "compute").click()
    _wait(driver, lambda d: d.execute_script("return state.job"), WAIT)
    job = driver.execute_script("return state.job")
    assert driver.find_element(By.ID, "progress").is_displayed()
    assert "of 7 cells" in driver.find_element(By.ID, "status").text
    driver.find_element(By.ID, "cancel").click()
    _wait(driver, lambda d: d.find_element(By.ID, "status").text.startswith("Cancelled"), 60)
    assert driver.find_element(By.ID, "compute").is_enabled()
    with server.client() as c:
        view = c.get(f"/v1/jobs/{job}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert view["status"] == "cancelled", view


@pytest.mark.parametrize("field, value, words", [
    ("n_r", 1, "n_r must be an integer in [2, 10000000], got 1"),
    ("bias_value", 1.5, "lam must be a number in [0.0, 1.0], got 1.5"),
    ("d", "two", "d: Input should be a valid integer"),
    ("rel_precision", 0, "rel_precision"),
])
def test_a_422_is_shown_beside_the_field_it_names(server, driver, field, value, words):
    _signed_in(driver, server)
    _fill(driver, MODEL)
    _type(driver, field, value)
    driver.find_element(By.ID, "compute").click()
    slot = {"bias_value": "lam"}.get(field, field)
    err = _wait(driver, lambda d: d.find_element(By.ID, f"err-{slot}")
                if d.find_element(By.ID, f"err-{slot}").text else None, WAIT)
    assert words in err.text
    assert "invalid" in driver.find_element(By.ID, field).get_attribute("class")
    assert not driver.find_element(By.ID, "message").is_displayed()   # not elsewhere
    assert driver.find_element(By.ID, "compute").is_enabled()


@pytest.mark.parametrize("status, detail, words", [
    (429, "token browser already has 8 computations running or queued on this server "
          "(limit max_per_client = 8); retry in 7 s", "The server is busy"),
    (503, "the server is stopping; the computation was cancelled", "The server is stopping"),
])
def test_429_and_503_are_plain_messages_with_the_retry_time(server, driver, status, detail,
                                                             words):
    """The server's answer replaced in the page (a busy or stopping server cannot be
    arranged reliably around a browser): the message and its Retry-After."""
    _signed_in(driver, server)
    driver.execute_script(
        "window.fetch = async () => new Response(JSON.stringify({detail: arguments[0]}), "
        "{status: arguments[1], headers: {'Retry-After': '7', "
        "'Content-Type': 'application/json'}});", detail, status)
    driver.find_element(By.ID, "compute").click()
    msg = _wait(driver, lambda d: d.find_element(By.ID, "message")
                if d.find_element(By.ID, "message").is_displayed() else None)
    assert words in msg.text and "Try again in 7 s." in msg.text
    assert "{" not in msg.text     # words, not JSON


def test_the_heatmap_is_drawn_by_the_server(server, driver):
    _signed_in(driver, server)
    _fill(driver, MODEL)
    _type(driver, "hm_n_r", "50,100")
    _type(driver, "hm_lam", "0.8,0.9")
    driver.find_element(By.ID, "heatmap-draw").click()
    img = _wait(driver, lambda d: d.find_element(By.ID, "heatmap-image")
                if d.find_elements(By.ID, "heatmap-image") else None, WAIT)
    _wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", img) > 100)
    assert driver.find_element(By.ID, "heatmap-status").text == "Done."
    _type(driver, "hm_lam", "0.8,2")
    driver.find_element(By.ID, "heatmap-draw").click()
    err = _wait(driver, lambda d: d.find_element(By.ID, "err-hm-lam")
                if d.find_element(By.ID, "err-hm-lam").text else None, WAIT)
    assert "lam must be a number in [0.0, 1.0], got 2" in err.text


@pytest.mark.parametrize("path, ready", [
    ("/docs", ".swagger-ui .info .title"),
    ("/redoc", "redoc-wrap, .redoc-wrap, h1"),
])
def test_docs_load_nothing_from_other_hosts(server, driver, path, ready):
    driver.get(server.url + path)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ready), 60)
    assert "ess" in driver.find_element(By.CSS_SELECTOR, ready).text
    assert _foreign(driver, server.url) == []
